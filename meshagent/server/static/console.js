// The meshagent web console: plain DOM, no build step.
// Reads the REST API (/api/...) with the session cookie set by /api/login and re-reads a
// part of the page when /api/events (server-sent events) says that kind of data changed.
// Everything shown comes from the network, so it is inserted as text, never as HTML.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { selected: new Set(), events: null, timers: {} };

class LoginRequired extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: options.body ? { "Content-Type": "application/json" } : {},
    ...options,
  });
  if (response.status === 401) throw new LoginRequired();
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && body.detail ? `${body.error}: ${body.detail}` : response.statusText;
    throw new Error(detail);
  }
  return body;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function fill(tableId, rows) {
  const body = $(`#${tableId} tbody`);
  body.replaceChildren(...rows);
}

const short = (hex) => (hex ? hex.slice(0, 12) : "");
const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleTimeString() : "");
const CERT_WARN_DAYS = 30;  // as the agents' node.certificate_warn_days default

// The node's certificate end as a date; "warn" within CERT_WARN_DAYS, "error" once ended
// (the mesh drops a node then). Older agents' records carry no certificate summary.
function certificateCell(record) {
  const cert = record.certificate;
  if (!cert) return cell("");
  const days = (cert.expires * 1000 - Date.now()) / 86400000;
  const text = new Date(cert.expires * 1000).toISOString().slice(0, 10);
  if (days <= 0) return cell(`${text} (ended)`, "error");
  return cell(days <= CERT_WARN_DAYS ? `${text} (${Math.ceil(days)} d)` : text,
    days <= CERT_WARN_DAYS ? "warn" : undefined);
}
const tags = (record) => Object.entries((record && record.tags) || {})
  .map(([k, v]) => `${k}=${v}`).join(" ");

async function loadMeshes() {
  const meshes = await api("/api/meshes");
  fill("meshes", meshes.map((m) => {
    const tr = document.createElement("tr");
    const lead = m.leader;
    const counts = Object.entries(m.nodes || {});
    const total = counts.reduce((sum, [, n]) => sum + n, 0);
    const byState = counts.map(([state, n]) => `${n} ${state}`).join(", ");
    tr.append(cell(short(m.mesh)), cell(m.name), cell(total ? `${total} (${byState})` : "0"),
      cell(lead ? short(lead.node) : "none"),
      cell(lead ? lead.term : ""),
      cell(lead ? (lead.connected ? "connected" : "disconnected") : "",
        lead && lead.connected ? "ok" : "warn"),
      cell(lead ? when(lead.since) : ""));
    return tr;
  }));
  const select = $("#cmd-mesh");
  const current = select.value;
  select.replaceChildren(...meshes.map((m) => {
    const option = document.createElement("option");
    option.value = m.mesh;
    option.textContent = `${m.name} (${short(m.mesh)})${m.console_can_sign ? "" : " - console not authorised"}`;
    return option;
  }));
  if (current) select.value = current;
}

async function loadNodes() {
  const query = new URLSearchParams();
  if ($("#node-search").value) query.set("q", $("#node-search").value);
  if ($("#node-state").value) query.set("state", $("#node-state").value);
  if ($("#node-tag").value) query.set("tag", $("#node-tag").value);
  const nodes = await api(`/api/nodes?${query}`);
  $("#node-count").textContent = `(${nodes.length})`;
  fill("nodes", nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.node;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.selected.has(n.node);
    box.setAttribute("aria-label", `select ${n.record.hostname || n.node}`);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(n.node); else state.selected.delete(n.node);
    });
    const pick = document.createElement("td");
    pick.append(box);
    tr.append(pick, cell(short(n.node)), cell(n.record.hostname), cell(n.state, `state-${n.state}`),
      cell(n.record.os), cell(n.record.power_source), cell(tags(n.record)), cell(when(n.last_seen)),
      certificateCell(n.record));
    return tr;
  }));
}

async function loadCommands() {
  const [commands, results] = await Promise.all([
    api("/api/commands?limit=100"), api("/api/results?limit=200")]);
  const byKey = new Map(results.map((r) => [`${r.id}/${r.node}`, r]));
  fill("commands", commands.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.command = c.id;
    const result = byKey.get(`${c.id}/${c.node}`);
    const summary = result ? `${result.status}: ${JSON.stringify(result.output)}` : "";
    tr.append(cell(short(c.id)), cell(c.action), cell(short(c.node)), cell(c.state, `state-${c.state}`),
      cell(c.attempts), cell(summary.slice(0, 200), "result"), cell(when(c.created)));
    return tr;
  }));
}

async function loadAudit() {
  const entries = await api("/api/audit?limit=100");
  fill("audit", entries.map((a) => {
    const tr = document.createElement("tr");
    tr.append(cell(a.audit_id), cell(when(a.time)), cell(a.actor), cell(a.event, `event-${a.event}`),
      cell(short(a.command)), cell(JSON.stringify(a.detail).slice(0, 200)));
    return tr;
  }));
}

const loaders = {
  meshes: loadMeshes, leaders: loadMeshes, nodes: loadNodes,
  commands: loadCommands, results: loadCommands, audit: loadAudit,
};

// Coalesce bursts of change notices (an inventory of many nodes) into one reload.
function refresh(topic) {
  const load = loaders[topic];
  if (!load || state.timers[load.name]) return;
  state.timers[load.name] = setTimeout(() => {
    delete state.timers[load.name];
    load().catch(handleError);
  }, 150);
}

function listen() {
  if (state.events) state.events.close();
  const events = new EventSource("/api/events");
  events.onopen = () => { $("#live").textContent = "live"; $("#live").className = "badge on"; };
  events.onerror = () => { $("#live").textContent = "reconnecting"; $("#live").className = "badge off"; };
  events.onmessage = (message) => refresh(message.data);
  state.events = events;
}

async function submitCommand(event) {
  event.preventDefault();
  const status = $("#cmd-status");
  const kind = $("#cmd-target-kind").value;
  let target;
  if (kind === "nodes") target = { nodes: [...state.selected] };
  else if (kind === "tags") {
    const [key, ...rest] = $("#cmd-tag").value.split("=");
    target = { tags: { [key.trim()]: rest.join("=").trim() } };
  } else target = { all: true };
  let args;
  try { args = JSON.parse($("#cmd-args").value || "{}"); } catch (err) {
    status.textContent = `arguments are not JSON: ${err.message}`; status.className = "error"; return;
  }
  try {
    const answer = await api("/api/console/commands", {
      method: "POST",
      body: JSON.stringify({ mesh: $("#cmd-mesh").value, target, action: $("#cmd-action").value,
        args, ttl: Number($("#cmd-ttl").value) }),
    });
    status.textContent = `queued ${short(answer.id)} for ${answer.nodes.length} node(s)`;
    status.className = "ok";
    await loadCommands();
  } catch (err) {
    if (err instanceof LoginRequired) return showLogin();
    status.textContent = err.message;
    status.className = "error";
  }
}

function handleError(err) {
  if (err instanceof LoginRequired) showLogin();
  else console.error(err);
}

function showLogin() {
  if (state.events) state.events.close();
  $("#console-view").hidden = true;
  $("#logout").hidden = true;
  $("#login-view").hidden = false;
  $("#password").focus();
}

async function showConsole() {
  $("#login-view").hidden = true;
  $("#console-view").hidden = false;
  $("#logout").hidden = false;
  await Promise.all([loadMeshes(), loadNodes(), loadCommands(), loadAudit()]);
  listen();
}

async function login(event) {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("/api/login", { method: "POST", body: JSON.stringify({ password: $("#password").value }) });
    $("#password").value = "";
    await showConsole();
  } catch (err) {
    $("#login-error").textContent = err instanceof LoginRequired ? "wrong password" : err.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", login);
  $("#command-form").addEventListener("submit", submitCommand);
  $("#logout").addEventListener("click", async () => {
    await api("/api/logout", { method: "POST" }).catch(() => null);
    showLogin();
  });
  for (const id of ["#node-search", "#node-state", "#node-tag"]) {
    $(id).addEventListener("input", () => refresh("nodes"));
  }
  showConsole().catch(handleError);
});
