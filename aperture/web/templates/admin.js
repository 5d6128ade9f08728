// Aperture's admin page: polls PREFIX/admin/state every 2 s and renders it.
// Every value goes into the page with textContent (never parsed as HTML), so a log message or an
// app name containing markup is shown as text; the page's CSP also forbids inline code.
"use strict";

(() => {
  const POLL_MS = 2000;
  const stateUrl = document.body.dataset.stateUrl;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function table(headings, rows, numeric = []) {
    const result = el("table");
    const head = el("thead");
    const headRow = el("tr");
    for (const heading of headings) headRow.append(el("th", heading));
    head.append(headRow);
    const body = el("tbody");
    for (const cells of rows) {
      const tr = el("tr");
      cells.forEach((cell, i) => tr.append(el("td", cell, numeric.includes(i) ? "number" : "")));
      body.append(tr);
    }
    result.append(head, body);
    return result;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
    const hours = Math.floor(seconds / 3600);
    return hours < 48 ? `${hours} h ${Math.floor((seconds % 3600) / 60)} min` : `${Math.floor(hours / 24)} days`;
  }

  function mebibytes(bytes) {
    return bytes === null || bytes === undefined ? "–" : `${(bytes / 1048576).toFixed(1)} MiB`;
  }

  function orDash(value) {
    return value === null || value === undefined ? "–" : value;
  }

  function renderProcess(state) {
    const server = state.server;
    const worker = server.worker ? `worker ${server.worker.number} of ${server.worker.count} (this page shows only the worker that answered)` : "single process";
    const rows = [
      ["Process id", `${server.pid} (${worker})`],
      ["Up for", duration(server.uptime_seconds)],
      ["Memory (RSS)", mebibytes(server.rss_bytes)],
      ["CPU", `${server.cpu_percent === null ? "–" : server.cpu_percent + " %"} recently, ${server.cpu_seconds} s in total`],
      ["Threads", server.threads],
      ["Sessions", `${state.totals.sessions} (${state.totals.connections} connections)`],
      ["State", server.draining ? "shutting down" : "serving"],
      ["Versions", `Aperture ${server.versions.aperture}, Bokeh ${server.versions.bokeh}, Python ${server.versions.python}`],
    ];
    const body = el("tbody");
    for (const [name, value] of rows) {
      const tr = el("tr");
      tr.append(el("th", name), el("td", value));
      body.append(tr);
    }
    document.querySelector("#process tbody").replaceWith(body);
  }

  function renderApp(app) {
    const section = el("section", null, "app");
    section.dataset.route = app.route;
    const title = el("h3");
    title.append(el("code", app.route), " — ");
    title.append(el("span", app.sessions, "count"), el("span", app.sessions === 1 ? " session" : " sessions"));
    section.append(title);
    section.append(el("p", `${app.connections} connections, ${app.unused} sessions without a connection, ${app.busy} running app code`, "meta"));
    if (app.shown < app.sessions) {
      section.append(el("p", `Showing the ${app.shown} most recent of ${app.sessions} sessions.`, "note"));
    }
    if (app.list.length > 0) {
      const rows = app.list.map((s) => [
        s.id + "…",
        duration(s.age_seconds),
        s.connections,
        s.last_activity_seconds === null ? "–" : `${duration(s.last_activity_seconds)} ago`,
        orDash(s.in_flight),
      ]);
      section.append(table(["Session", "Age", "Connections", "Last activity", "Callbacks in flight"], rows, [2, 4]));
    }
    return section;
  }

  function renderProblems(selector, problems, kind) {
    const box = el("div");
    box.id = selector.slice(1);
    if (problems.length === 0) box.append(el("p", `No ${kind} since the server started.`, "note"));
    for (const problem of problems) {
      const item = el("div", null, kind === "warnings" ? "problem warning" : "problem");
      const where = [problem.time, problem.level, problem.logger];
      if (problem.app) where.push(`app ${problem.app}`);
      if (problem.session) where.push(`session ${problem.session}…`);
      if (problem.request_id) where.push(`request ${problem.request_id}`);
      item.append(el("div", where.join(" · "), "meta"), el("pre", problem.message, "message"));
      if (problem.exception) {
        const details = el("details");
        details.append(el("summary", "Traceback"), el("pre", problem.exception));
        item.append(details);
      }
      box.append(item);
    }
    document.querySelector(selector).replaceWith(box);
  }

  function render(state) {
    renderProcess(state);
    const apps = el("div");
    apps.id = "apps";
    for (const app of state.apps) apps.append(renderApp(app));
    document.querySelector("#apps").replaceWith(apps);
    renderProblems("#errors", state.errors, "errors");
    renderProblems("#warnings", state.warnings, "warnings");
  }

  function status(text, stale) {
    const node = document.getElementById("status");
    node.textContent = text;
    node.className = stale ? "stale" : "";
  }

  async function poll() {
    try {
      const response = await fetch(stateUrl, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      const state = await response.json();
      render(state);
      status(`Updated ${state.time} (every ${POLL_MS / 1000} s)`, false);
    } catch (error) {
      status(`Could not update: ${error.message}`, true);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
