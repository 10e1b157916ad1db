// taskcast dashboard: submit tasks and watch them live, on the browser client module (taskcast.js).
//
// taskcast.js does the transport: one WebSocket for every followed task, resume after drops, long-poll while
// the socket is out of reach. Every update it hands over is the next version of its task, so the page only
// renders; it still applies an update only when it is newer than the row, as REST answers (cancel) come too.
//
// The module is imported relatively (/dashboard/taskcast.js, the same file as /taskcast.js), so that the
// dashboard's folder also works as it is when hosted on a site of its own.
import { mountEndpointsPanel } from "./endpoints.js";
import { Taskcast, TaskcastError, isTerminal, problemText } from "./taskcast.js";

const config = window.TASKCAST_CONFIG || {};
const params = new URLSearchParams(window.location.search);
// ?ws= and ?api= override the stack's config (handy to point at a deployed API, or at nothing).
const API_BASE = (params.get("api") || config.restUrl || window.location.origin).replace(/\/+$/, "");
const WS_URL = params.get("ws") || config.websocketUrl || "";

const KEY_STORAGE = "taskcast.apiKey";
const DEFAULT_INPUTS = {
  sleep: '{"seconds": 5, "steps": 5}',
  fail: '{"message": "the job failed as asked"}',
  invoke: '{"function": "my-function", "payload": {}}',
};
const FILE_JOBS = new Set(["digest"]); // jobs whose input is an uploaded file

const $ = (selector) => document.querySelector(selector);
const tasks = new Map(); // id -> task state (see addTask)
let apiKey = initialKey();
let client = null; // the Taskcast client of the current key
let everOpened = false;
let endpointsPanel = null;

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

/** A client for the current key, its connection shown in the badge; running tasks move over to it. */
function startClient() {
  client?.close();
  everOpened = false;
  if (!apiKey) {
    client = null;
    setTransport("no key");
    return;
  }
  client = new Taskcast({ restUrl: API_BASE, websocketUrl: WS_URL, auth: { apiKey } });
  client.on("state", showState);
  client.on("error", (error) => showError(error.message));
  client.connect(); // the dashboard keeps its socket open, to show how updates would reach it
  for (const task of tasks.values()) {
    if (!isTerminal(task.status)) follow(task);
  }
  endpointsPanel?.reload();
}

/** The Endpoints panel's REST calls go through the current key's client. */
function endpointsRequest(method, path, body) {
  if (!client) return Promise.reject(new Error("enter an API key first"));
  return client.request(method, path, { body });
}

function showState(state) {
  if (state === "open") everOpened = true;
  const names = { open: "websocket", polling: "polling", closed: "closed" };
  setTransport(names[state] || (everOpened ? "reconnecting" : "connecting"));
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
  };
  tasks.set(task.id, task);
  renderNewRow(task);
  afterUpdate(task);
  if (!isTerminal(task.status)) follow(task);
  return task;
}

/** Follow a task from the version its row shows: taskcast.js hands over every later one, in order. */
function follow(task) {
  client.follow(task.id, {
    sinceVersion: task.version,
    onUpdate: (update) => applyUpdate(task, update, update.via),
    onError: (error) => {
      if (error.status) {
        task.error = error.problem || { title: error.message }; // the REST API refused this task
        renderRow(task);
      } else {
        showError(error.message);
      }
    },
  });
}

/** Apply one update (a task.status update or a monitor) if it is newer; returns whether it was. */
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
  if (task.status === "SUCCEEDED" && task.resultState === "none") loadResult(task);
}

async function loadResult(task) {
  task.resultState = "loading";
  renderRow(task);
  try {
    task.result = await client.result(task.id);
    task.resultState = "shown";
  } catch (error) {
    task.result = error.message;
    task.resultState = "failed";
  }
  renderRow(task);
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
  row.querySelector('[data-action="cancel"]').hidden = isTerminal(task.status);

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
  const answer = await client.request("POST", "/uploads", { body });
  const row = addTask(answer.task);
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

function requestFailed(error) {
  const refused = error instanceof TaskcastError && error.code !== "network";
  return refused ? `Not accepted: ${error.message}` : `Request failed: ${error.message}`;
}

async function submitTask(event) {
  event.preventDefault();
  showError("");
  if (!client) {
    showError("Enter an API key first.");
    $("#api-key").focus();
    return;
  }
  const type = $("#job-type").value;
  const callbackUrl = $("#callback-url").value.trim() || undefined;
  let input;
  if (!FILE_JOBS.has(type)) {
    try {
      input = JSON.parse($("#job-input").value || "null");
    } catch (error) {
      showError(`The input is not valid JSON: ${error.message}`);
      return;
    }
  }
  const file = FILE_JOBS.has(type) ? $("#job-file").files[0] : null;
  if (FILE_JOBS.has(type) && !file) {
    showError("Choose a file to upload first.");
    return;
  }
  const button = $("#submit");
  button.disabled = true;
  try {
    if (file) await submitFile(file, type, callbackUrl);
    else addTask(await client.submit(type, input, { callbackUrl }));
  } catch (error) {
    showError(requestFailed(error));
  } finally {
    button.disabled = false;
  }
}

async function cancelTask(task) {
  showError("");
  try {
    const monitor = await client.cancel(task.id);
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
  startClient();
}

function setDefaultInput() {
  const type = $("#job-type").value;
  $("#job-input").value = DEFAULT_INPUTS[type] ?? "{}";
  $("#input-field").hidden = FILE_JOBS.has(type);
  $("#file-field").hidden = !FILE_JOBS.has(type);
}

function init() {
  $("#api-key").value = apiKey;
  $("#ws-url").textContent = WS_URL || "(the one the first task names)";
  $("#api-url").textContent = API_BASE;
  setDefaultInput();
  $("#job-type").addEventListener("change", setDefaultInput);
  $("#submit-form").addEventListener("submit", submitTask);
  $("#key-form").addEventListener("submit", useKey);
  endpointsPanel = mountEndpointsPanel($("#endpoints-panel"), { request: endpointsRequest });
  document.body.dataset.ready = "true";
  startClient();
}

init();
