// taskcast.js: the browser client of taskcast. One dependency-free ES module, no build step.
//
//   import { Taskcast } from "https://api.example.com/taskcast.js";
//   const tc = new Taskcast({ restUrl, websocketUrl, auth: { getTicket } });
//   const task = await tc.submit("sleep", { seconds: 5 });
//   tc.follow(task.id, { onUpdate: (update) => console.log(update.status, update.progress) });
//
// Guarantees of follow(): updates in version order, each version once, never backwards; gaps are filled
// from GET /tasks/{id}/events. One WebSocket carries every followed task; it is pinged before the
// gateway's idle limit and reopened (with since_version resume) after every drop, the 2-hour maximum
// included. While it cannot be opened, followed tasks are long-polled over REST, and push takes over
// again as soon as the socket opens. See docs/browser-client.md.

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

const DEFAULTS = {
  pingIntervalMs: 4 * 60 * 1000, // API Gateway closes a connection idle for 10 minutes
  pollWaitSeconds: 20, // long-poll hold; the server caps it at 25 s, under the gateway's 29 s
  reconnectBaseMs: 1000,
  reconnectCapMs: 30000,
  closeDelayMs: 2000, // keep an unused socket this long, in case another follow() comes at once
};

/** An error of the client: `code` is "auth", "http", "network", "not_found" or "protocol". */
export class TaskcastError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string, status?: number, problem?: any, cause?: unknown}} [details]
   */
  constructor(message, { code = "http", status, problem, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "TaskcastError";
    this.code = code;
    this.status = status;
    this.problem = problem;
  }
}

/** The text of an RFC 9457 problem: "title: detail". */
export function problemText(problem, fallback = "Error") {
  if (!problem || typeof problem !== "object") return fallback;
  const title = problem.title || fallback;
  return problem.detail ? `${title}: ${problem.detail}` : title;
}

export const isTerminal = (status) => TERMINAL.has(status);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Full jitter between half and all of an exponential step. */
function backoffMs(attempt, baseMs, capMs) {
  const step = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 16));
  return step / 2 + Math.random() * (step / 2);
}

function retryAfterMs(response) {
  const value = response.headers.get("Retry-After");
  if (value === null) return NaN;
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? NaN : Math.max(0, date - Date.now());
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (_) {
    return text;
  }
}

function withQuery(url, name, value) {
  return `${url}${url.includes("?") ? "&" : "?"}${name}=${encodeURIComponent(value)}`;
}

/** A monitor, a task.status message or a history entry, as what onUpdate receives. */
function toUpdate(taskId, source, via) {
  const update = {
    task_id: taskId,
    status: source.status,
    version: Number(source.version),
    progress: source.progress ?? 0,
    at: source.at ?? source.updated_at ?? null,
    via,
  };
  if (source.error) update.error = source.error;
  if (source.result_url) update.result_url = source.result_url;
  if (source.message !== undefined) update.message = source.message;
  return update;
}

/** Call a listener of the page; its bug is reported (uncaught, in the console), never allowed to break the client. */
function safely(listener, ...args) {
  try {
    listener(...args);
  } catch (error) {
    setTimeout(() => {
      throw error;
    });
  }
}

/** A small event emitter: on(name, listener) returns the function that removes the listener. */
class Emitter {
  #listeners = new Map();

  on(name, listener) {
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name).add(listener);
    return () => this.off(name, listener);
  }

  off(name, listener) {
    this.#listeners.get(name)?.delete(listener);
  }

  emit(name, ...args) {
    for (const listener of [...(this.#listeners.get(name) || [])]) safely(listener, ...args);
  }
}

/** One followed task: its last delivered version and its listeners, fed one update at a time. */
class Follow {
  constructor(client, taskId, sinceVersion) {
    this.client = client;
    this.taskId = taskId;
    this.version = sinceVersion;
    this.listeners = new Set();
    this.ended = false;
    this.lastStatus = null;
    this.restOnly = false; // the socket refused this task (an error frame): REST follows it
    this.poller = null; // the running long-poll loop's handle, null while the socket carries the task
    this.queue = Promise.resolve(); // updates are handled in arrival order, one at a time
  }

  /** Queue an update (from the socket, a poll or the history); repeats and stale versions are dropped. */
  ingest(source, via) {
    this.queue = this.queue.then(() => this.#handle(source, via)).catch((error) => this.fail(error));
    return this.queue;
  }

  async #handle(source, via) {
    const version = Number(source.version);
    if (this.ended || !(version > this.version)) return;
    if (version > this.version + 1) {
      await this.#fillGap(version, via); // a version was missed: the history has it
      if (this.ended || !(version > this.version)) return;
    }
    this.#deliver(toUpdate(this.taskId, source, via));
  }

  async #fillGap(upTo, via) {
    let history;
    try {
      history = await this.client.events(this.taskId);
    } catch (error) {
      if (error instanceof TaskcastError && (error.code === "auth" || error.code === "not_found")) throw error;
      // The history is out of reach: the newer update is still better than nothing, and the gap is told.
      const missed = `${this.version + 1}…${upTo - 1}`;
      this.fail(new TaskcastError(`versions ${missed} of ${this.taskId} could not be read: ${error.message}`,
        { code: "network", cause: error }));
      return;
    }
    for (const entry of history) {
      const version = Number(entry.version);
      if (version > this.version && version < upTo && !this.ended) this.#deliver(toUpdate(this.taskId, entry, via));
    }
  }

  #deliver(update) {
    this.version = update.version;
    this.lastStatus = update.status;
    for (const listener of [...this.listeners]) safely(listener.update, update);
    if (isTerminal(update.status)) this.end(update);
  }

  fail(error) {
    if (this.ended) return;
    for (const listener of [...this.listeners]) safely(listener.error, error);
    // An unknown task, or a key the REST API refuses, cannot get better by retrying. (A refused WebSocket
    // handshake has no status: REST may still serve the task.)
    if (error instanceof TaskcastError && (error.code === "not_found" || (error.code === "auth" && error.status))) {
      this.end(null, error);
    }
  }

  stopPolling() {
    this.poller?.abort.abort();
    this.poller = null;
  }

  end(update, error) {
    if (this.ended) return;
    this.ended = true;
    this.stopPolling();
    for (const listener of [...this.listeners]) listener.finish(update, error);
    this.listeners.clear();
    this.client._forget(this);
  }
}

/**
 * The taskcast client.
 *
 * auth: `{ apiKey }` (Bearer on REST; the socket connects with a short-lived ticket from POST /ws-tickets,
 * or with `?token=` when `useTickets: false`), or `{ getTicket, headers? }` when the page's own backend
 * mints tickets (and, through `headers`, authorises the REST calls it proxies).
 */
export class Taskcast {
  #emitter = new Emitter();
  #follows = new Map(); // task id -> Follow
  #ws = null;
  #wsOpen = false;
  #connecting = false;
  #failures = 0; // connects in a row that never opened
  #authFailed = null; // the TaskcastError that stopped the socket, until reconnect()
  #keepOpen = false;
  #state = "closed";
  #reconnectTimer = null;
  #pingTimer = null;
  #closeTimer = null;
  #generation = 0; // bumps on close(): stale callbacks of an older socket do nothing

  /**
   * @param {{restUrl?: string, websocketUrl?: string, auth?: object, pingIntervalMs?: number,
   *   pollWaitSeconds?: number, reconnectBaseMs?: number, reconnectCapMs?: number, closeDelayMs?: number,
   *   useTickets?: boolean}} options
   */
  constructor(options = {}) {
    const origin = typeof location !== "undefined" ? location.origin : "";
    this.restUrl = (options.restUrl || origin).replace(/\/+$/, "");
    this.websocketUrl = options.websocketUrl || "";
    this.learnsWebsocketUrl = options.websocketUrl !== false; // false: REST only, never a socket
    this.auth = options.auth || {};
    this.useTickets = options.useTickets ?? true;
    this.options = { ...DEFAULTS };
    for (const name of Object.keys(DEFAULTS)) if (options[name] !== undefined) this.options[name] = options[name];
  }

  // ------------------------------------------------------------------ events

  /** `state` (listener gets "connecting" | "open" | "polling" | "closed") and `error` (a TaskcastError). */
  on(name, listener) {
    return this.#emitter.on(name, listener);
  }

  off(name, listener) {
    this.#emitter.off(name, listener);
  }

  /** The connection state: "connecting", "open", "polling" or "closed". */
  get state() {
    return this.#state;
  }

  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    this.#emitter.emit("state", state);
  }

  // ------------------------------------------------------------------ REST

  async #authHeaders() {
    if (this.auth.apiKey) return { Authorization: `Bearer ${this.auth.apiKey}` };
    if (typeof this.auth.headers === "function") return { ...(await this.auth.headers()) };
    return { ...(this.auth.headers || {}) };
  }

  /** A raw REST call with the client's auth: the fetch Response (never throws on an HTTP status). */
  async fetch(method, path, { body, headers = {}, redirect = "follow", signal } = {}) {
    const init = {
      method,
      headers: { Accept: "application/json", ...(await this.#authHeaders()), ...headers },
      cache: "no-store",
      redirect,
      signal,
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      return await fetch(`${this.restUrl}${path}`, init);
    } catch (error) {
      throw new TaskcastError(`${method} ${path} failed: ${error.message}`, { code: "network", cause: error });
    }
  }

  /** A REST call whose answer must be 2xx: its JSON body, else a TaskcastError with the problem. */
  async request(method, path, options = {}) {
    const response = await this.fetch(method, path, options);
    const body = await readBody(response);
    if (!response.ok) throw this.#httpError(response.status, body, `${method} ${path}`);
    return body;
  }

  #httpError(status, problem, what) {
    if (status === 401 || status === 403) {
      return new TaskcastError(`Authentication failed (${status}): ${problemText(problem, "the key was refused")}`,
        { code: "auth", status, problem });
    }
    const code = status === 404 ? "not_found" : "http";
    return new TaskcastError(problemText(problem, `${what} answered ${status}`), { code, status, problem });
  }

  /** POST /tasks: the task monitor (202). */
  async submit(type, input, { idempotencyKey, callbackUrl } = {}) {
    const body = { type, input };
    if (callbackUrl) body.callback_url = callbackUrl;
    const headers = {};
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    return this.#learn(await this.request("POST", "/tasks", { body, headers }));
  }

  /** Without a websocketUrl option, the socket's URL is the one a task monitor names (links.websocket). */
  #learn(monitor) {
    const url = monitor?.links?.websocket;
    if (!this.websocketUrl && this.learnsWebsocketUrl && typeof url === "string" && /^wss?:\/\//.test(url)) {
      this.websocketUrl = url;
      this.#ensureSocket();
    }
    return monitor;
  }

  /** GET /tasks/{id}: the task monitor, also once it succeeded (the 303 to its result is not followed). */
  async get(taskId, { wait } = {}) {
    const path = `/tasks/${encodeURIComponent(taskId)}${wait ? `?wait=${wait}` : ""}`;
    const response = await this.fetch("GET", path, { redirect: "manual" });
    return this.#monitorFrom(taskId, response, path);
  }

  async #monitorFrom(taskId, response, path) {
    if (response.type === "opaqueredirect" || response.status === 303) {
      // SUCCEEDED: the answer is a redirect to the result; the history's last entry gives the final state.
      const history = await this.events(taskId);
      const last = history[history.length - 1] || { status: "SUCCEEDED", version: 0, progress: 100 };
      return { id: taskId, ...last, status: "SUCCEEDED", links: { result: `/tasks/${taskId}/result` } };
    }
    const body = await readBody(response);
    if (!response.ok) throw this.#httpError(response.status, body, `GET ${path}`);
    return this.#learn(body);
  }

  /** DELETE /tasks/{id}: the monitor of the cancelled task. */
  async cancel(taskId) {
    return this.#learn(await this.request("DELETE", `/tasks/${encodeURIComponent(taskId)}`));
  }

  /** GET /tasks/{id}/events: the history, oldest first. */
  events(taskId) {
    return this.request("GET", `/tasks/${encodeURIComponent(taskId)}/events`);
  }

  /**
   * GET /tasks/{id}/result: the result. A large result answers 303 to a presigned S3 URL; the browser follows
   * it and, the URL being of another origin, leaves the Authorization header behind (Fetch standard), as S3
   * requires: a presigned URL carries its own signature.
   */
  result(taskId) {
    return this.request("GET", `/tasks/${encodeURIComponent(taskId)}/result`);
  }

  /** POST /ws-tickets: a single-use ticket for one WebSocket connect. */
  async ticket() {
    const body = await this.request("POST", "/ws-tickets");
    if (!body || typeof body.ticket !== "string") throw new TaskcastError("POST /ws-tickets answered no ticket");
    return body.ticket;
  }

  // ------------------------------------------------------------------ follow

  /**
   * Follow a task until it ends. onUpdate gets every version after `sinceVersion` (default 0: all of them),
   * in order, once. Returns `{ taskId, unsubscribe(), done }`; `done` resolves with the terminal update
   * (null after unsubscribe) and rejects when following cannot go on (unknown task, authentication).
   */
  follow(taskId, { onUpdate = () => {}, onError = () => {}, sinceVersion = 0 } = {}) {
    let follow = this.#follows.get(taskId);
    const isNew = !follow;
    if (isNew) {
      follow = new Follow(this, taskId, Number(sinceVersion) || 0);
      this.#follows.set(taskId, follow);
    }
    let resolve;
    let reject;
    const done = new Promise((yes, no) => {
      resolve = yes;
      reject = no;
    });
    done.catch(() => {}); // a rejection nobody awaits is not an unhandled one: onError has it too
    const listener = {
      update: (update) => onUpdate(update),
      error: (error) => onError(error),
      finish: (update, error) => (error ? reject(error) : resolve(update)),
    };
    follow.listeners.add(listener);
    if (isNew) this.#started(follow);
    return {
      taskId,
      done,
      get version() {
        return follow.version;
      },
      unsubscribe: () => {
        if (!follow.listeners.delete(listener)) return;
        resolve(null);
        if (follow.listeners.size === 0) follow.end(null);
      },
    };
  }

  #started(follow) {
    clearTimeout(this.#closeTimer);
    if (this.#wsOpen) this.#subscribe(follow);
    else if (this.#state === "polling" || !this.websocketUrl || this.#authFailed) this.#poll(follow);
    this.#ensureSocket();
  }

  /** Called by a Follow that ended: unsubscribe it, and close the socket once nothing is followed. */
  _forget(follow) {
    if (this.#follows.get(follow.taskId) !== follow) return;
    this.#follows.delete(follow.taskId);
    if (this.#wsOpen && !isTerminal(follow.lastStatus)) this.#send({ action: "unsubscribe", task_id: follow.taskId });
    if (!this.#wanted()) {
      clearTimeout(this.#closeTimer);
      this.#closeTimer = setTimeout(() => {
        if (!this.#wanted()) this.#closeSocket();
      }, this.options.closeDelayMs);
    }
  }

  /** Keep the socket open even while nothing is followed (a dashboard that shows its connection). */
  connect() {
    this.#keepOpen = true;
    if (!this.websocketUrl) this.#setState("polling");
    this.#ensureSocket();
  }

  /** Try the socket again now, also after an authentication failure (e.g. with new auth). */
  reconnect() {
    this.#authFailed = null;
    this.#failures = 0;
    this.#closeSocket();
    this.#ensureSocket();
  }

  /** Stop everything: every follow ends (done resolves with null) and the socket closes. */
  close() {
    this.#keepOpen = false;
    for (const follow of [...this.#follows.values()]) follow.end(null);
    this.#closeSocket();
  }

  #wanted() {
    return this.#keepOpen || this.#follows.size > 0;
  }

  // ------------------------------------------------------------------ WebSocket

  /** Open the socket if it is wanted, possible and not already opening or waiting for its next attempt. */
  #ensureSocket() {
    if (!this.#wanted() || !this.websocketUrl || this.#ws || this.#connecting || this.#authFailed) return;
    if (this.#reconnectTimer !== null) return; // a reconnect is already scheduled
    this.#openSocket();
  }

  async #socketUrl() {
    if (typeof this.auth.getTicket === "function") return withQuery(this.websocketUrl, "ticket", await this.auth.getTicket());
    if (this.auth.apiKey && this.useTickets) return withQuery(this.websocketUrl, "ticket", await this.ticket());
    if (this.auth.apiKey) return withQuery(this.websocketUrl, "token", this.auth.apiKey);
    return this.websocketUrl;
  }

  async #openSocket() {
    const generation = this.#generation;
    this.#connecting = true;
    if (this.#state !== "polling") this.#setState("connecting");
    let ws;
    try {
      if (typeof WebSocket === "undefined") throw new TaskcastError("WebSocket is not available", { code: "network" });
      const url = await this.#socketUrl();
      if (generation !== this.#generation) return;
      ws = new WebSocket(url);
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#connecting = false;
      this.#connectFailed(error instanceof TaskcastError && error.code === "auth" ? error : null);
      return;
    }
    this.#ws = ws;
    ws.onopen = () => {
      if (this.#ws !== ws) return;
      this.#connecting = false;
      this.#wsOpen = true;
      this.#failures = 0;
      this.#setState("open");
      for (const follow of this.#follows.values()) {
        if (!follow.restOnly) this.#subscribe(follow); // resume each where it stands
      }
      clearInterval(this.#pingTimer);
      this.#pingTimer = setInterval(() => this.#send({ action: "ping" }), this.options.pingIntervalMs);
    };
    ws.onmessage = (event) => this.#onFrame(event.data);
    ws.onclose = (event) => {
      if (this.#ws !== ws) return;
      const wasOpen = this.#wsOpen;
      this.#ws = null;
      this.#wsOpen = false;
      this.#connecting = false;
      clearInterval(this.#pingTimer);
      if (wasOpen) this.#dropped(event);
      else this.#handshakeFailed();
    };
  }

  #subscribe(follow) {
    follow.stopPolling();
    this.#send({ action: "subscribe", task_id: follow.taskId, since_version: follow.version });
  }

  #send(message) {
    if (this.#ws && this.#wsOpen) this.#ws.send(JSON.stringify(message));
  }

  #onFrame(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (_) {
      return;
    }
    const follow = message.task_id ? this.#follows.get(message.task_id) : undefined;
    if (message.type === "task.status" && follow) {
      follow.ingest(message, "websocket");
    } else if (message.type === "error") {
      const error = new TaskcastError(`WebSocket: ${message.message || message.code}`, { code: "protocol", problem: message });
      if (follow) {
        if (/not_found|not-found/.test(String(message.code))) {
          follow.fail(new TaskcastError(message.message || "Unknown task", { code: "not_found", problem: message }));
        } else {
          follow.fail(error);
          follow.restOnly = true; // the socket will not carry it: REST will
          this.#poll(follow);
        }
      } else {
        this.#emitter.emit("error", error);
      }
    }
  }

  /** An open socket closed (a network drop, the gateway's idle or 2-hour limit): reopen at once, resume. */
  #dropped() {
    if (!this.#wanted()) {
      this.#setState("closed");
      return;
    }
    this.#setState("connecting");
    this.#scheduleReconnect(100 + Math.random() * 400);
  }

  /** The handshake failed before the socket opened. Browsers hide why: find out whether it was authentication. */
  async #handshakeFailed() {
    const generation = this.#generation;
    let authError = null;
    if (await this.#reachable()) authError = await this.#checkAuth();
    if (generation !== this.#generation) return;
    this.#connectFailed(authError);
  }

  /** Whether anything answers at the WebSocket URL (a refused handshake) rather than nothing at all. */
  async #reachable() {
    const url = this.websocketUrl.replace(/^ws/, "http");
    try {
      await fetch(url, { mode: "no-cors", cache: "no-store" });
      return true;
    } catch (_) {
      return false;
    }
  }

  /** After a refused handshake at a reachable gateway: an auth error, or null when the credentials are fine. */
  async #checkAuth() {
    if (this.auth.apiKey) {
      try {
        await this.ticket(); // a key the REST API accepts is a key $connect accepts
        return null;
      } catch (error) {
        return error instanceof TaskcastError && error.code === "auth" ? error : null;
      }
    }
    if (typeof this.auth.getTicket === "function") {
      return new TaskcastError("Authentication failed: the WebSocket handshake was refused (bad or expired ticket)",
        { code: "auth" });
    }
    return null;
  }

  #connectFailed(authError) {
    this.#failures += 1;
    if (!this.#wanted()) {
      this.#setState("closed");
      return;
    }
    if (authError) {
      this.#authFailed = authError; // no silent retry loop: reported once, retried on reconnect()
      this.#emitter.emit("error", authError);
      for (const follow of this.#follows.values()) follow.fail(authError);
    } else {
      this.#scheduleReconnect(backoffMs(this.#failures, this.options.reconnectBaseMs, this.options.reconnectCapMs));
    }
    this.#setState("polling");
    for (const follow of this.#follows.values()) this.#poll(follow);
  }

  #scheduleReconnect(delayMs) {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      this.#ensureSocket();
    }, delayMs);
  }

  #closeSocket() {
    this.#generation += 1;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#closeTimer);
    clearInterval(this.#pingTimer);
    this.#reconnectTimer = null;
    this.#connecting = false;
    const ws = this.#ws;
    this.#ws = null;
    this.#wsOpen = false;
    if (ws) ws.close(1000);
    this.#setState("closed");
  }

  // ------------------------------------------------------------------ long-poll (fallback)

  /** Long-poll one task over REST until it ends, or until the socket is open again and has it. */
  async #poll(follow) {
    if (follow.poller || follow.ended) return;
    const poller = { abort: new AbortController() };
    follow.poller = poller;
    const active = () => follow.poller === poller && !follow.ended && (!this.#wsOpen || follow.restOnly);
    let attempt = 0;
    while (active()) {
      const wait = this.options.pollWaitSeconds;
      const path = `/tasks/${encodeURIComponent(follow.taskId)}?wait=${wait}`;
      const started = Date.now();
      let delay = 0;
      try {
        const response = await this.fetch("GET", path, { redirect: "manual", signal: poller.abort.signal });
        if (response.status === 429 || response.status >= 500) {
          await response.body?.cancel();
          attempt += 1;
          const after = retryAfterMs(response);
          delay = Number.isNaN(after) ? backoffMs(attempt, 1000, 30000) : after;
        } else {
          const before = follow.version;
          const monitor = await this.#monitorFrom(follow.taskId, response, path);
          if (!active()) break; // the socket took over meanwhile: it resumes from the version delivered
          await follow.ingest(monitor, "polling");
          attempt = 0;
          if (follow.version === before && Date.now() - started < (wait * 1000) / 2) {
            // answered at once with nothing new (no long-poll on this side): ask again when the server says
            const after = retryAfterMs(response);
            delay = Math.max(Number.isNaN(after) ? 0 : after, backoffMs(0, 1000, 30000));
          }
        }
      } catch (error) {
        if (!active()) break;
        if (error instanceof TaskcastError && (error.code === "auth" || error.code === "not_found")) {
          follow.fail(error);
          break;
        }
        attempt += 1;
        delay = backoffMs(attempt, 1000, 30000);
      }
      if (delay > 0) await sleep(delay);
    }
    if (follow.poller === poller) follow.poller = null;
  }
}

export default Taskcast;
