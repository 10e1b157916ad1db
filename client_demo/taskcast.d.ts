// Types of taskcast.js, the browser client of taskcast (see docs/browser-client.md).

export type TaskStatus = "PENDING" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
export type ConnectionState = "connecting" | "open" | "polling" | "closed";
export type Via = "websocket" | "polling";

/** An RFC 9457 problem, as every REST error and a task's `error` are. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  [extension: string]: unknown;
}

/** The task monitor that POST /tasks, GET /tasks/{id} and DELETE /tasks/{id} answer with. */
export interface TaskMonitor {
  id: string;
  type: string;
  status: TaskStatus;
  version: number;
  progress: number;
  created_at: string;
  updated_at: string;
  error?: Problem;
  links: { self: string; result: string; events: string; websocket: string };
}

/** One entry of GET /tasks/{id}/events. */
export interface HistoryEntry {
  version: number;
  status: TaskStatus;
  progress: number;
  at: string;
}

/** What onUpdate receives: the next version of the task. */
export interface TaskUpdate {
  task_id: string;
  status: TaskStatus;
  version: number;
  progress: number;
  at: string | null;
  /** How it arrived: pushed over the WebSocket, or read by the long-poll fallback. */
  via: Via;
  error?: Problem;
  result_url?: string;
  /** A note of the task's, when the monitor carries one (e.g. "waiting for upload"). */
  message?: string;
}

/** Authenticate with the tenant's API key: fine for a trusted page (a local dashboard), never for the public. */
export interface ApiKeyAuth {
  apiKey: string;
}

/** Tickets minted by the page's own backend (POST /ws-tickets with the key, server-side). */
export interface TicketAuth {
  getTicket: () => Promise<string>;
  /** Headers for the REST calls, e.g. a session cookie's CSRF token for a proxy that adds the key. */
  headers?: Record<string, string> | (() => Promise<Record<string, string>> | Record<string, string>);
}

export interface TaskcastOptions {
  /** Base URL of the REST API (default: the page's origin). */
  restUrl?: string;
  /** wss:// URL of the WebSocket API (default: the first task monitor's links.websocket); false: long-poll only. */
  websocketUrl?: string | false;
  auth: ApiKeyAuth | TicketAuth;
  /** With an API key: connect with a ticket from POST /ws-tickets (default true) or with ?token=<key>. */
  useTickets?: boolean;
  /** App-level ping interval, under the gateway's 10-minute idle limit (default 4 min). */
  pingIntervalMs?: number;
  /** Long-poll hold, GET /tasks/{id}?wait=N (default 20; the server caps it at 25). */
  pollWaitSeconds?: number;
  /** Reconnect backoff after failed connects: jittered, doubling from base up to cap (default 1 s, 30 s). */
  reconnectBaseMs?: number;
  reconnectCapMs?: number;
  /** How long an unused socket stays open after the last follow ends (default 2 s). */
  closeDelayMs?: number;
}

export interface FollowOptions {
  onUpdate?: (update: TaskUpdate) => void;
  onError?: (error: TaskcastError) => void;
  /** Deliver only versions after this one (default 0: every version). */
  sinceVersion?: number;
}

export interface FollowHandle {
  readonly taskId: string;
  /** The last version delivered. */
  readonly version: number;
  /** Resolves with the terminal update (null after unsubscribe); rejects when following cannot go on. */
  readonly done: Promise<TaskUpdate | null>;
  unsubscribe(): void;
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  redirect?: RequestRedirect;
  signal?: AbortSignal;
}

export type ErrorCode = "auth" | "http" | "network" | "not_found" | "protocol";

export class TaskcastError extends Error {
  constructor(message: string, details?: { code?: ErrorCode; status?: number; problem?: unknown; cause?: unknown });
  readonly code: ErrorCode;
  /** The HTTP status of a REST answer (absent for WebSocket and network errors). */
  readonly status?: number;
  readonly problem?: Problem | Record<string, unknown>;
}

export class Taskcast {
  constructor(options: TaskcastOptions);
  readonly restUrl: string;
  readonly websocketUrl: string;
  readonly state: ConnectionState;

  on(event: "state", listener: (state: ConnectionState) => void): () => void;
  on(event: "error", listener: (error: TaskcastError) => void): () => void;
  off(event: "state" | "error", listener: (...args: any[]) => void): void;

  submit(type: string, input: unknown, options?: { idempotencyKey?: string; callbackUrl?: string }): Promise<TaskMonitor>;
  get(taskId: string, options?: { wait?: number }): Promise<TaskMonitor>;
  cancel(taskId: string): Promise<TaskMonitor>;
  result<T = unknown>(taskId: string): Promise<T>;
  events(taskId: string): Promise<HistoryEntry[]>;
  ticket(): Promise<string>;
  follow(taskId: string, options?: FollowOptions): FollowHandle;

  /** Keep the WebSocket open even while nothing is followed. */
  connect(): void;
  /** Try the WebSocket again now (also after an authentication failure). */
  reconnect(): void;
  /** End every follow and close the WebSocket. */
  close(): void;

  /** A REST call with the client's auth whose answer must be 2xx: its JSON body. */
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<T>;
  /** A REST call with the client's auth: the Response, whatever its status. */
  fetch(method: string, path: string, options?: RequestOptions): Promise<Response>;
}

export function problemText(problem: unknown, fallback?: string): string;
export function isTerminal(status: string): boolean;
export default Taskcast;
