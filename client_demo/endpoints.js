// The dashboard's "Endpoints" panel: the tenant's registered webhook endpoints (list, add, test, disable and
// enable, recent deliveries). It only renders, and calls the REST API through the `request` function it is
// given (the dashboard passes its taskcast.js client's), so it works with whatever authentication the page uses.

const STATUSES = ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const RECENT_DELIVERIES = 10;

/**
 * An authenticated REST call: the JSON body of a 2xx answer, else it throws an Error saying why.
 * @typedef {(method: string, path: string, body?: unknown) => Promise<any>} Request
 */

/** A filter's one-line description: which statuses and types an endpoint receives. */
export function describeFilter(filter) {
  const statuses = filter && Array.isArray(filter.statuses) && filter.statuses.length ? filter.statuses : null;
  const types = filter && Array.isArray(filter.types) && filter.types.length ? filter.types : null;
  const parts = [statuses ? statuses.join(", ") : "every status"];
  if (types) parts.push(`types ${types.join(", ")}`);
  return parts.join(" · ");
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/**
 * Fill `root` (an empty element) with the panel. `request` makes an authenticated REST call; the panel reloads
 * its list when `reload()` on the returned object is called (for example after the API key changes).
 * @param {HTMLElement} root
 * @param {{request: Request}} options
 */
export function mountEndpointsPanel(root, { request }) {
  const form = element("form", { id: "endpoint-form", className: "endpoint-form", autocomplete: "off" });
  const url = element("input", { id: "endpoint-url", type: "url", placeholder: "https://example.com/webhooks", spellcheck: false, required: true });
  const description = element("input", { id: "endpoint-description", type: "text", placeholder: "optional" });
  const types = element("input", { id: "endpoint-types", type: "text", placeholder: "every type (or: sleep, digest)", spellcheck: false });
  const statusBoxes = element("div", { className: "endpoint-statuses" });
  for (const status of STATUSES) {
    const box = element("input", { type: "checkbox", value: status, name: "endpoint-status" });
    statusBoxes.append(element("label", { className: "check" }, box, document.createTextNode(status)));
  }
  form.append(
    element("div", { className: "fields endpoint-fields" },
      element("div", { className: "field" }, element("label", { htmlFor: "endpoint-url", text: "URL" }), url),
      element("div", { className: "field" }, element("label", { htmlFor: "endpoint-types", text: "Task types" }), types),
      element("div", { className: "field" }, element("label", { htmlFor: "endpoint-description", text: "Description" }), description)),
    element("div", { className: "field" }, element("label", { text: "Statuses (none ticked: every change)" }), statusBoxes),
    element("div", { className: "actions" }, element("button", { id: "add-endpoint", type: "submit", text: "Add endpoint" })),
  );
  const secret = element("div", { id: "endpoint-secret", className: "secret" });
  secret.hidden = true;
  const error = element("div", { id: "endpoint-error", className: "error", role: "alert" });
  error.hidden = true;
  const rows = element("tbody", { id: "endpoint-rows" });
  const table = element("table", { id: "endpoints-table" },
    element("thead", {}, element("tr", {},
      ...["Endpoint", "Receives", "State", ""].map((text) => element("th", { scope: "col", text })))),
    rows);
  const empty = element("p", { id: "endpoints-empty", className: "empty", text: "No endpoints yet: add one to receive every matching change of your tasks, signed." });
  root.append(form, secret, error, table, empty);

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  function selectedStatuses() {
    return [...statusBoxes.querySelectorAll("input:checked")].map((box) => box.value);
  }

  async function add(event) {
    event.preventDefault();
    showError("");
    const filter = {};
    const statuses = selectedStatuses();
    if (statuses.length) filter.statuses = statuses;
    const typeList = types.value.split(",").map((name) => name.trim()).filter(Boolean);
    if (typeList.length) filter.types = typeList;
    const body = { url: url.value.trim() };
    if (Object.keys(filter).length) body.filter = filter;
    if (description.value.trim()) body.description = description.value.trim();
    try {
      const created = await request("POST", "/webhook-endpoints", body);
      // The secret is shown this once: the API never returns it again.
      secret.replaceChildren(
        document.createTextNode("Signing secret of the new endpoint (shown once, keep it now): "),
        element("code", { className: "endpoint-secret-value", text: created.secret }));
      secret.hidden = false;
      form.reset();
      await reload();
    } catch (failure) {
      showError(`Could not add the endpoint: ${failure.message}`);
    }
  }

  async function runAction(label, action) {
    showError("");
    try {
      await action();
    } catch (failure) {
      showError(`${label}: ${failure.message}`);
    }
  }

  function detailRow(endpoint, content) {
    const existing = rows.querySelector(`tr.endpoint-detail[data-endpoint-id="${CSS.escape(endpoint.id)}"]`);
    const row = existing || element("tr", { className: "endpoint-detail", "data-endpoint-id": endpoint.id });
    row.replaceChildren(element("td", { colSpan: 4 }, content));
    if (!existing) rows.querySelector(`tr.endpoint[data-endpoint-id="${CSS.escape(endpoint.id)}"]`).after(row);
  }

  async function test(endpoint) {
    const outcome = await request("POST", `/webhook-endpoints/${encodeURIComponent(endpoint.id)}/test`);
    const code = outcome.status_code === null || outcome.status_code === undefined ? "no answer" : `HTTP ${outcome.status_code}`;
    detailRow(endpoint, element("p", { className: "test-outcome", "data-outcome": outcome.outcome, text: `Test event: ${outcome.outcome} (${code})` }));
  }

  async function setEnabled(endpoint, enabled) {
    await request("PATCH", `/webhook-endpoints/${encodeURIComponent(endpoint.id)}`, { enabled });
    await reload();
  }

  async function remove(endpoint) {
    await request("DELETE", `/webhook-endpoints/${encodeURIComponent(endpoint.id)}`);
    await reload();
  }

  async function deliveries(endpoint) {
    const body = await request("GET", `/webhook-endpoints/${encodeURIComponent(endpoint.id)}/deliveries?limit=${RECENT_DELIVERIES}`);
    const list = body.items; // newest first; `next` pages on, beyond what the panel shows
    if (!list.length) {
      detailRow(endpoint, element("p", { className: "deliveries-empty", text: "No deliveries yet." }));
      return;
    }
    const tbody = element("tbody", {});
    for (const delivery of list) {
      tbody.append(element("tr", { className: "delivery", "data-outcome": delivery.outcome },
        element("td", { text: delivery.at || "" }),
        element("td", {}, element("code", { text: delivery.task_id || "" })),
        element("td", { text: `v${delivery.version} · attempt ${delivery.attempt}` }),
        element("td", { text: delivery.status_code === null || delivery.status_code === undefined ? "no answer" : String(delivery.status_code) }),
        element("td", { className: "delivery-outcome", text: delivery.outcome + (delivery.error ? ` (${delivery.error})` : "") })));
    }
    detailRow(endpoint, element("table", { className: "deliveries" },
      element("thead", {}, element("tr", {}, ...["At", "Task", "Version", "Status", "Outcome"].map((text) => element("th", { text })))),
      tbody));
  }

  function button(label, className, action, endpoint) {
    const node = element("button", { type: "button", className: `small secondary ${className}`, text: label });
    node.addEventListener("click", async () => {
      node.disabled = true;
      await runAction(label, () => action(endpoint));
      node.disabled = false;
    });
    return node;
  }

  function renderRow(endpoint) {
    const state = endpoint.enabled ? "enabled" : "disabled";
    const stateCell = element("td", { className: "endpoint-state" }, element("span", { className: `pill endpoint-${state}`, text: state }));
    if (!endpoint.enabled && endpoint.disabled_reason) {
      stateCell.append(element("div", { className: "hint endpoint-reason", text: endpoint.disabled_reason }));
    }
    return element("tr", { className: "endpoint", "data-endpoint-id": endpoint.id, "data-enabled": String(endpoint.enabled) },
      element("td", {},
        element("code", { className: "endpoint-url", text: endpoint.url }),
        endpoint.description ? element("div", { className: "hint", text: endpoint.description }) : null),
      element("td", { className: "endpoint-filter", text: describeFilter(endpoint.filter) }),
      stateCell,
      element("td", { className: "row-actions endpoint-actions" },
        button("Test", "endpoint-test", test, endpoint),
        endpoint.enabled
          ? button("Disable", "endpoint-disable", (target) => setEnabled(target, false), endpoint)
          : button("Enable", "endpoint-enable", (target) => setEnabled(target, true), endpoint),
        button("Deliveries", "endpoint-deliveries", deliveries, endpoint),
        button("Delete", "endpoint-delete", remove, endpoint)));
  }

  async function reload() {
    let list;
    try {
      list = await request("GET", "/webhook-endpoints");
    } catch (failure) {
      showError(`Could not list the endpoints: ${failure.message}`);
      return;
    }
    rows.replaceChildren(...list.map(renderRow));
    empty.hidden = list.length > 0;
    root.dataset.loaded = "true";
  }

  form.addEventListener("submit", add);
  return { reload };
}
