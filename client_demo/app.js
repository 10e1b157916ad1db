// taskcast dashboard: submit tasks and watch them live. Push over the WebSocket; polling only as the fallback.
//
// Every update carries a `version`; an update is applied only when it is newer than what the row shows, so
// repeats (delivery is at least once) and stale answers never move a task backwards.
"use strict";

(() => {
  const config = window.TASKCAST_CONFIG || {};
  const params = new URLSearchParams(window.location.search);
  // ?ws= and ?api= override the stack's config (handy to point at a deployed API, or at nothing).
  const API_BASE = (params.get("api") || config.restUrl || window.location.origin).replace(/\/+$/, "");
  const WS_URL = params.get("ws") || config.websocketUrl || "";

  const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
  const PING_EVERY_MS = 4 * 60 * 1000; // API Gateway closes idle connections after 10 minutes
  const POLL_BASE_MS = 1000;
  const POLL_CAP_MS = 30000;
  const RECONNECT_CAP_MS = 30000;
  const KEY_STORAGE = "taskcast.apiKey";
  const DEFAULT_INPUTS = {
    sleep: '{"seconds": 5, "steps": 5}',
    fail: '{"message": "the job failed as asked"}',
    invoke: '{"function": "my-function", "payload": {}}',
  };
  const FILE_JOBS = new Set(["digest"]); // jobs whose input is an uploaded file

  const $ = (selector) => document.querySelector(selector);
  const tasks = new Map(); // id -> task state (see addTask)
  const socket = {
    ws: null, open: false, everOpened: false, failures: 0, reconnectTimer: null, pingTimer: null, attempt: 0,
  };
  let apiKey = initialKey();

  // ------------------------------------------------------------ pure helpers

  /** Exponential backoff with jitter (half to all of the step), never shorter than the server's Retry-After. */
  function pollDelayMs(attempt, retryAfterSeconds) {
    const step = Math.min(POLL_CAP_MS, POLL_BASE_MS * 2 ** attempt);
    const jittered = step / 2 + Math.random() * (step / 2);
    const floor = Number.isFinite(retryAfterSeconds) ? retryAfterSeconds * 1000 : 0;
    return Math.max(jittered, floor);
  }

  function retryAfterSeconds(response) {
    const value = response.headers.get("Retry-After");
    if (value === null || !/^\s*\d+(\.\d+)?\s*$/.test(value)) return NaN;
    return Number(value);
  }

  function withTicket(url, ticket) {
    return `${url}${url.includes("?") ? "&" : "?"}ticket=${encodeURIComponent(ticket)}`;
  }

  function problemText(problem, fallback) {
    if (!problem || typeof problem !== "object") return fallback;
    const title = problem.title || fallback;
    return problem.detail ? `${title}: ${problem.detail}` : title;
  }

  // ------------------------------------------------------------ API key

  // The stack may hand out a fresh dev key on every start: a remembered key wins only while the stack's key
  // is the one it was remembered against, so a restart does not leave the page with a dead key.
  function initialKey() {
    try {
      const saved = JSON.parse(window.localStorage.getItem(KEY_STORAGE) || "null");
      if (saved && saved.key && (!config.apiKey || saved.configKey === config.apiKey)) return saved.key;
    } catch (_) {
      /* storage unavailable or corrupt: fall through */
    }
    return config.apiKey || "";
  }

  function rememberKey(key) {
    try {
      window.localStorage.setItem(KEY_STORAGE, JSON.stringify({ key, configKey: config.apiKey || null }));
    } catch (_) {
      /* private mode: the key lasts for this page only */
    }
  }

  // ------------------------------------------------------------ REST

  async function api(method, path, body, extraHeaders) {
    const headers = { Authorization: `Bearer ${apiKey}`, Accept: "application/json", ...(extraHeaders || {}) };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(`${API_BASE}${path}`, init);
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

  class ApiError extends Error {
    constructor(status, problem) {
      super(problemText(problem, `HTTP ${status}`));
      this.status = status;
      this.problem = problem;
    }
  }

  async function expectOk(response) {
    const body = await readBody(response);
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // ------------------------------------------------------------ task state

  function addTask(monitor) {
    const task = {
      id: monitor.id,
      type: monitor.type,
      status: monitor.status,
      version: monitor.version,
      progress: monitor.progress || 0,
      via: "rest",
      error: monitor.error || null,
      result: undefined,
      resultState: "none", // none | loading | shown | failed
      note: monitor.message || "", // e.g. "waiting for upload", then the upload's progress
      pollTimer: null,
      pollAttempt: 0,
    };
    tasks.set(task.id, task);
    renderNewRow(task);
    afterUpdate(task);
    return task;
  }

  /** Apply one update (a task.status message or a monitor) if it is newer; returns whether it was. */
  function applyUpdate(task, update, via) {
    if (!task || !(Number(update.version) > task.version)) return false;
    task.status = update.status;
    task.version = Number(update.version);
    if (update.progress !== undefined) task.progress = update.progress;
    if (update.error) task.error = update.error;
    if (update.status !== "PENDING") task.note = "";
    task.via = via;
    renderRow(task);
    afterUpdate(task);
    return true;
  }

  function afterUpdate(task) {
    if (TERMINAL.has(task.status)) {
      stopPolling(task);
      if (socket.open) send({ action: "unsubscribe", task_id: task.id });
      if (task.status === "SUCCEEDED" && task.resultState === "none") loadResult(task);
    }
  }

  async function loadResult(task) {
    task.resultState = "loading";
    renderRow(task);
    try {
      task.result = await expectOk(await api("GET", `/tasks/${encodeURIComponent(task.id)}/result`));
      task.resultState = "shown";
    } catch (error) {
      task.result = error.message;
      task.resultState = "failed";
    }
    renderRow(task);
  }

  // ------------------------------------------------------------ WebSocket (push)

  function send(message) {
    if (socket.ws && socket.open) socket.ws.send(JSON.stringify(message));
  }

  function subscribe(task) {
    // since_version: only what came after the version the row shows (nothing is missed, nothing repeated)
    send({ action: "subscribe", task_id: task.id, since_version: task.version });
  }

  // A single-use, short-lived ticket for one connect: the long-lived key never goes into a WebSocket URL
  // (URLs end up in proxy and access logs). Every connect and reconnect fetches a fresh one.
  async function fetchTicket() {
    const body = await expectOk(await api("POST", "/ws-tickets"));
    if (!body || typeof body.ticket !== "string") throw new Error("POST /ws-tickets answered no ticket");
    return body.ticket;
  }

  async function connect() {
    clearTimeout(socket.reconnectTimer);
    if (!apiKey || !WS_URL) {
      setTransport(apiKey ? "polling" : "no key");
      if (apiKey) pollAllRunning();
      return;
    }
    const attempt = ++socket.attempt;
    if (!socket.everOpened) setTransport("connecting");
    let ws;
    try {
      const ticket = await fetchTicket();
      if (attempt !== socket.attempt) return; // a newer connect (another key) took over meanwhile
      ws = new WebSocket(withTicket(WS_URL, ticket));
    } catch (_) {
      if (attempt === socket.attempt) onSocketClosed(null);
      return;
    }
    socket.ws = ws;
    ws.onopen = () => {
      if (socket.ws !== ws) return;
      socket.open = true;
      socket.everOpened = true;
      socket.failures = 0;
      setTransport("websocket");
      for (const task of tasks.values()) {
        stopPolling(task);
        if (!TERMINAL.has(task.status)) subscribe(task);
      }
      clearInterval(socket.pingTimer);
      socket.pingTimer = setInterval(() => send({ action: "ping" }), PING_EVERY_MS);
    };
    ws.onmessage = (event) => onFrame(event.data);
    ws.onclose = () => onSocketClosed(ws);
  }

  function onSocketClosed(ws) {
    if (ws && socket.ws !== ws) return; // an old socket, replaced by a newer one
    const wasOpen = socket.open;
    socket.ws = null;
    socket.open = false;
    clearInterval(socket.pingTimer);
    socket.failures += 1;
    if (wasOpen) {
      // A drop: reconnect at once and resume from each row's version; poll only if that fails too.
      setTransport("reconnecting");
      socket.reconnectTimer = setTimeout(connect, 250 + Math.random() * 500);
      return;
    }
    setTransport("polling");
    pollAllRunning();
    const delay = Math.min(RECONNECT_CAP_MS, 1000 * 2 ** Math.min(socket.failures, 10));
    socket.reconnectTimer = setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
  }

  function onFrame(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (message.type === "task.status") {
      applyUpdate(tasks.get(message.task_id), message, "websocket");
    } else if (message.type === "error") {
      showError(`WebSocket: ${message.message || message.code}`);
      const task = tasks.get(message.task_id);
      if (task && !TERMINAL.has(task.status)) schedulePoll(task, 0); // follow it by REST instead
    }
  }

  // ------------------------------------------------------------ polling (fallback)

  function pollAllRunning() {
    for (const task of tasks.values()) {
      if (!TERMINAL.has(task.status) && task.pollTimer === null) schedulePoll(task, pollDelayMs(0, NaN));
    }
  }

  function schedulePoll(task, delayMs) {
    stopPolling(task);
    task.pollTimer = setTimeout(() => pollOnce(task), delayMs);
  }

  function stopPolling(task) {
    clearTimeout(task.pollTimer);
    task.pollTimer = null;
  }

  async function pollOnce(task) {
    task.pollTimer = null;
    if (socket.open || TERMINAL.has(task.status)) return;
    let retryAfter = NaN;
    try {
      // fetch follows the 303 a finished task answers with, straight to its result
      const response = await api("GET", `/tasks/${encodeURIComponent(task.id)}`);
      retryAfter = retryAfterSeconds(response);
      if (response.redirected && response.ok) {
        await finishFromRedirect(task, await readBody(response));
        return;
      }
      if (response.status === 429 || response.status >= 500) throw new ApiError(response.status, null);
      const monitor = await expectOk(response);
      const moved = applyUpdate(task, monitor, "polling");
      task.pollAttempt = moved ? 0 : task.pollAttempt + 1;
    } catch (error) {
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
        task.error = error.problem || { title: error.message };
        renderRow(task);
        return; // unknown task, bad key: polling again will not help
      }
      task.pollAttempt += 1;
    }
    if (!TERMINAL.has(task.status) && !socket.open) schedulePoll(task, pollDelayMs(task.pollAttempt, retryAfter));
  }

  async function finishFromRedirect(task, result) {
    // The redirect hides the monitor: the history's last entry gives the final version.
    task.result = result;
    task.resultState = "shown";
    let last = null;
    try {
      const history = await expectOk(await api("GET", `/tasks/${encodeURIComponent(task.id)}/events`));
      last = Array.isArray(history) && history.length ? history[history.length - 1] : null;
    } catch (_) {
      /* the result is what matters; the version stays as last seen */
    }
    const update = last || { status: "SUCCEEDED", version: task.version + 1, progress: 100 };
    if (!applyUpdate(task, update, "polling")) renderRow(task);
  }

  // ------------------------------------------------------------ rendering

  function setTransport(name) {
    const badge = $("#transport");
    badge.textContent = name;
    badge.dataset.transport = name.replace(/\s+/g, "-");
  }

  function showError(text) {
    const box = $("#error");
    box.textContent = text;
    box.hidden = !text;
  }

  function cell(className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    return td;
  }

  function renderNewRow(task) {
    const row = document.createElement("tr");
    row.dataset.taskId = task.id;
    const idCell = cell("id");
    const code = document.createElement("code");
    code.textContent = task.id;
    code.title = task.id;
    idCell.append(code);
    const statusCell = cell("status");
    const pill = document.createElement("span");
    pill.className = "pill";
    statusCell.append(pill);
    const progressCell = cell("progress");
    progressCell.innerHTML =
      '<div class="progress-wrap"><div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100">' +
      '<div class="fill"></div></div><span class="pct"></span></div>';
    const actionCell = cell("row-actions");
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary small";
    cancel.dataset.action = "cancel";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", () => cancelTask(task));
    actionCell.append(cancel);
    row.append(idCell, cell("type"), statusCell, progressCell, cell("version"), cell("via"), actionCell);

    const detail = document.createElement("tr");
    detail.className = "detail";
    detail.dataset.detailFor = task.id;
    const detailCell = cell("detail-cell");
    detailCell.colSpan = 7;
    const pre = document.createElement("pre");
    pre.id = `result-${task.id}`;
    detailCell.append(pre);
    detail.append(detailCell);
    detail.hidden = true;

    const body = $("#task-rows");
    body.prepend(row, detail); // newest first
    $("#empty").hidden = true;
    renderRow(task);
  }

  function renderRow(task) {
    const row = document.querySelector(`tr[data-task-id="${CSS.escape(task.id)}"]`);
    if (!row) return;
    row.dataset.status = task.status;
    row.dataset.version = String(task.version);
    row.dataset.transport = task.via;
    row.querySelector(".type").textContent = task.note ? `${task.type} · ${task.note}` : task.type;
    const pill = row.querySelector(".pill");
    pill.textContent = task.status;
    pill.className = `pill status-${task.status.toLowerCase()}`;
    const progress = Math.max(0, Math.min(100, Number(task.progress) || 0));
    row.querySelector(".fill").style.width = `${progress}%`;
    row.querySelector(".bar").setAttribute("aria-valuenow", String(progress));
    row.querySelector(".pct").textContent = `${progress}%`;
    row.querySelector(".version").textContent = `v${task.version}`;
    row.querySelector(".via").textContent = task.via;
    row.querySelector('[data-action="cancel"]').hidden = TERMINAL.has(task.status);

    const detail = row.nextElementSibling;
    const pre = detail.querySelector("pre");
    detail.classList.remove("is-error", "is-result");
    if (task.error) {
      detail.hidden = false;
      detail.classList.add("is-error");
      pre.dataset.kind = "error";
      pre.textContent = `${problemText(task.error, "Error")}\n${JSON.stringify(task.error, null, 2)}`;
    } else if (task.resultState === "shown" || task.resultState === "failed") {
      detail.hidden = false;
      detail.classList.add(task.resultState === "shown" ? "is-result" : "is-error");
      pre.dataset.kind = task.resultState === "shown" ? "result" : "error";
      pre.textContent =
        task.resultState === "shown"
          ? typeof task.result === "string" ? task.result : JSON.stringify(task.result, null, 2)
          : `Result not available: ${task.result}`;
    } else {
      detail.hidden = true;
    }
  }

  // ------------------------------------------------------------ uploads

  /** PUT the file to its presigned URL with the signed headers (the browser sets Content-Length itself). */
  function putFile(target, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", target.url);
      for (const [name, value] of Object.entries(target.headers || {})) {
        if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
      }
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(Math.floor((100 * event.loaded) / event.total));
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else reject(new Error(s3ErrorText(xhr)));
      };
      xhr.onerror = () => reject(new Error("the upload URL could not be reached"));
      xhr.send(file);
    });
  }

  function s3ErrorText(xhr) {
    const doc = xhr.responseXML || new DOMParser().parseFromString(xhr.responseText || "", "application/xml");
    const code = doc.querySelector("Error > Code");
    const message = doc.querySelector("Error > Message");
    return `S3 answered ${xhr.status}${code ? ` ${code.textContent}` : ""}${message ? `: ${message.textContent}` : ""}`;
  }

  /** POST /uploads with the task, show the task at once (PENDING), then send the file; it starts when it lands. */
  async function submitFile(file, type, callbackUrl) {
    const task = { type };
    if (callbackUrl) task.callback_url = callbackUrl;
    const body = { content_type: file.type || "application/octet-stream", size: file.size, task };
    const answer = await expectOk(await api("POST", "/uploads", body));
    const row = addTask(answer.task);
    if (socket.open) subscribe(row);
    else if (socket.failures > 0 || !WS_URL) schedulePoll(row, pollDelayMs(0, NaN));
    const progress = (percent) => {
      if (row.status !== "PENDING") return;
      row.note = `uploading ${percent}%`;
      renderRow(row);
    };
    try {
      await putFile(answer, file, progress);
      if (row.status === "PENDING") {
        row.note = "uploaded";
        renderRow(row);
      }
    } catch (error) {
      row.note = "upload failed";
      renderRow(row);
      await cancelTask(row); // nothing will arrive: do not leave the task waiting for its deadline
      showError(`Upload refused: ${error.message}`);
    }
  }

  // ------------------------------------------------------------ actions

  async function submitTask(event) {
    event.preventDefault();
    showError("");
    if (!apiKey) {
      showError("Enter an API key first.");
      $("#api-key").focus();
      return;
    }
    const type = $("#job-type").value;
    const callbackUrl = $("#callback-url").value.trim();
    if (FILE_JOBS.has(type)) {
      const file = $("#job-file").files[0];
      if (!file) {
        showError("Choose a file to upload first.");
        return;
      }
      const button = $("#submit");
      button.disabled = true;
      try {
        await submitFile(file, type, callbackUrl);
      } catch (error) {
        showError(error instanceof ApiError ? `Not accepted: ${error.message}` : `Request failed: ${error.message}`);
      } finally {
        button.disabled = false;
      }
      return;
    }
    let input;
    try {
      input = JSON.parse($("#job-input").value || "null");
    } catch (error) {
      showError(`The input is not valid JSON: ${error.message}`);
      return;
    }
    const body = { type, input };
    if (callbackUrl) body.callback_url = callbackUrl;
    const button = $("#submit");
    button.disabled = true;
    try {
      const response = await api("POST", "/tasks", body);
      const monitor = await expectOk(response);
      const task = addTask(monitor);
      if (TERMINAL.has(task.status)) return;
      if (socket.open) subscribe(task);
      else if (socket.failures > 0 || !WS_URL) schedulePoll(task, pollDelayMs(0, retryAfterSeconds(response)));
      // else still connecting for the first time: the open handler subscribes every running task
    } catch (error) {
      showError(error instanceof ApiError ? `Not accepted: ${error.message}` : `Request failed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  async function cancelTask(task) {
    showError("");
    try {
      const monitor = await expectOk(await api("DELETE", `/tasks/${encodeURIComponent(task.id)}`));
      if (monitor && typeof monitor === "object") applyUpdate(task, monitor, "rest");
    } catch (error) {
      showError(`Cancel refused: ${error.message}`);
    }
  }

  function useKey(event) {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    if (!key || key === apiKey) return;
    apiKey = key;
    rememberKey(key);
    showError("");
    if (socket.ws) {
      const old = socket.ws;
      socket.ws = null;
      socket.open = false;
      old.close();
    }
    socket.failures = 0;
    socket.everOpened = false;
    connect();
  }

  function setDefaultInput() {
    const type = $("#job-type").value;
    $("#job-input").value = DEFAULT_INPUTS[type] ?? "{}";
    $("#input-field").hidden = FILE_JOBS.has(type);
    $("#file-field").hidden = !FILE_JOBS.has(type);
  }

  function init() {
    $("#api-key").value = apiKey;
    $("#ws-url").textContent = WS_URL || "(none: polling only)";
    $("#api-url").textContent = API_BASE;
    setDefaultInput();
    $("#job-type").addEventListener("change", setDefaultInput);
    $("#submit-form").addEventListener("submit", submitTask);
    $("#key-form").addEventListener("submit", useKey);
    document.body.dataset.ready = "true";
    connect();
  }

  init();
})();
