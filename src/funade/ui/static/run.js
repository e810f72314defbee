// A run's page: step logs on demand, and while the run goes, its state, steps and graph kept
// current by polling GET /api/v1/runs/{id} every second (it stops when the run has finished).
"use strict";

(() => {
  const { badge, parseTime, timeNode } = funade;
  const root = document.getElementById("run");
  if (!root) return;
  const runId = root.dataset.run;
  // The server's names of finished, resumable and cancellable runs (pipelines/states.py).
  const { finished: FINISHED, resumable: RESUMABLE, cancellable: CANCELLABLE } = JSON.parse(
    root.dataset.states,
  );
  const DONE = ["succeeded", "cached"];

  // Formatting, as the server's filters do it ------------------------------------------------

  const words = (state) => state.replace(/_/g, " ");


  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
    if (seconds < 10) return `${seconds.toFixed(2)} s`;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    let minutes = Math.floor(Math.round(seconds) / 60);
    const secs = Math.round(seconds) % 60;
    if (minutes < 60) return `${minutes} min ${secs} s`;
    const hours = Math.floor(minutes / 60);
    minutes %= 60;
    return `${hours} h ${minutes} min`;
  }




  function took(step) {
    const start = parseTime(step.started_at);
    if (start === null) return null;
    const end = parseTime(step.finished_at) ?? Date.now();
    return Math.max(0, (end - start) / 1000);
  }

  // One state for a fan-out drawn as one node (the same rule as pages/runs.py).
  function summary(states) {
    if (states.length === 0) return "pending";
    if (new Set(states).size === 1) return states[0];
    for (const state of ["failed", "running", "pending", "cancelled", "upstream_failed"]) {
      if (states.includes(state)) return state === "pending" ? "running" : state;
    }
    return "succeeded";
  }

  // Logs --------------------------------------------------------------------------------------

  async function fetchLog(instance) {
    const path = `/api/v1/runs/${runId}/logs?step=${encodeURIComponent(instance)}`;
    let response;
    try {
      response = await fetch(path, {
        credentials: "same-origin",
        headers: { "X-Funade-UI": "1", Accept: "text/plain, application/json" },
      });
    } catch (exc) {
      throw new Error("The server cannot be reached. Check that `funade up` is still running.");
    }
    if (response.status === 401) {
      location.assign(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
      throw new Error("Your session ended; sign in again.");
    }
    const text = await response.text();
    if (!response.ok) {
      let message = `The server answered ${response.status}.`;
      try {
        const error = JSON.parse(text).error || {};
        const fix = error.fix && !(error.message || "").includes(error.fix) ? error.fix : "";
        message = [error.message, fix].filter(Boolean).join(" ") || message;
      } catch (exc) {
        /* not JSON: keep the status */
      }
      throw new Error(message);
    }
    return text;
  }

  function logRowOf(instance, create) {
    let row = document.getElementById(`log-row-${instance}`);
    if (row || !create) return row;
    const stepRow = document.getElementById(`step-${instance}`);
    row = document.createElement("tr");
    row.id = `log-row-${instance}`;
    row.className = "log-row";
    const cell = document.createElement("td");
    cell.colSpan = 8;
    const pre = document.createElement("pre");
    pre.id = `log-${instance}`;
    pre.className = "step-log";
    pre.tabIndex = 0;
    pre.setAttribute("aria-label", `Log of ${instance}`);
    cell.append(pre);
    row.append(cell);
    stepRow.after(row);
    return row;
  }

  async function showLog(button, open) {
    const instance = button.dataset.log;
    const existing = logRowOf(instance, false);
    const want = open ?? !(existing && !existing.hidden);
    if (!want) {
      if (existing) existing.hidden = true;
      button.setAttribute("aria-expanded", "false");
      button.textContent = "Show log";
      button.setAttribute("aria-label", `Show the log of ${instance}`);
      return;
    }
    const row = logRowOf(instance, true);
    row.hidden = false;
    const pre = row.querySelector("pre");
    button.setAttribute("aria-controls", pre.id);
    button.setAttribute("aria-expanded", "true");
    button.textContent = "Hide log";
    button.setAttribute("aria-label", `Hide the log of ${instance}`);
    if (pre.dataset.loaded) return;
    pre.textContent = "Loading the log…";
    await loadLog(instance, pre, button.dataset.live === "true");
  }

  // A running step's log is its output so far: read again on each refresh while it is shown,
  // and once more, whole, when the step ends.
  async function loadLog(instance, pre, live) {
    try {
      const text = await fetchLog(instance);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = text || (live ? "(No output yet.)" : "(The log is empty.)");
      if (atEnd) pre.scrollTop = pre.scrollHeight; // follow the output, unless scrolled back
      if (live) delete pre.dataset.loaded;
      else pre.dataset.loaded = "true";
    } catch (exc) {
      pre.textContent = `The log could not be read: ${exc.message}`;
      funade.say(exc.message);
    }
  }

  function openStep(instance) {
    const row = document.getElementById(`step-${instance}`);
    if (!row) return;
    const button = row.querySelector("button.show-log");
    if (button && !button.hidden) showLog(button, true);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.show-log");
    if (button) {
      showLog(button, null);
      return;
    }
    const node = event.target.closest(".graph a.node");
    if (node) {
      const href = node.getAttribute("href") || "";
      if (href.startsWith("#step-")) openStep(decodeURIComponent(href.slice(6)));
    }
  });

  if (location.hash.startsWith("#step-")) openStep(decodeURIComponent(location.hash.slice(6)));

  // Live --------------------------------------------------------------------------------------

  function setCell(row, field, content) {
    const cell = row.querySelector(`[data-f="${field}"]`);
    if (!cell) return;
    if (typeof content === "string") cell.textContent = content;
    else cell.replaceChildren(content);
  }

  function rowFor(step) {
    let row = document.getElementById(`step-${step.instance}`);
    if (row) return row;
    const template = document.getElementById("step-template");
    row = template.content.firstElementChild.cloneNode(true);
    row.id = `step-${step.instance}`;
    row.dataset.step = step.instance;
    row.dataset.of = step.node;
    row.querySelector(".step-name .mono").textContent = step.instance;
    row.querySelector("button.show-log").dataset.log = step.instance;
    const tbody = document.querySelector("#steps tbody");
    const siblings = [...tbody.querySelectorAll("tr[data-step]")].filter(
      (r) => r.dataset.of === step.node
    );
    const placeholder = siblings.find((r) => r.hasAttribute("data-placeholder"));
    if (placeholder) {
      placeholder.before(row);
      placeholder.hidden = true;
    } else if (siblings.length) {
      const last = siblings[siblings.length - 1];
      const log = document.getElementById(`log-row-${last.dataset.step}`);
      (log || last).after(row);
    } else {
      tbody.append(row);
    }
    const none = document.getElementById("no-steps");
    if (none) none.remove();
    return row;
  }

  function updateRow(step) {
    const row = rowFor(step);
    row.removeAttribute("data-placeholder");
    setCell(row, "state", badge(step.state));
    setCell(row, "attempt", step.attempt ? String(step.attempt) : "—");
    if (step.cached) setCell(row, "cached", badge("cached"));
    else {
      const no = document.createElement("span");
      no.className = "muted";
      no.textContent = "no";
      setCell(row, "cached", no);
    }
    setCell(row, "started", timeNode(step.started_at));
    setCell(row, "duration", duration(took(step)));
    setCell(row, "error", step.error || "");
    const button = row.querySelector("button.show-log");
    if (button) {
      const live = step.state === "running";
      const wasLive = button.dataset.live === "true";
      button.hidden = !(step.log_digest || live);
      button.dataset.live = String(live);
      const open = document.getElementById(`log-row-${step.instance}`);
      if (open && !open.hidden && (live || wasLive)) loadLog(step.instance, open.querySelector("pre"), live);
    }
  }

  function updateNode(el, state, cached, sub) {
    el.setAttribute("class", `node state-${state}${cached ? " cached" : ""}`);
    // The box keeps room for the longest such line (pages/runs.py, ROOM): it is written whole.
    const [text, ...more] = el.querySelectorAll("text.sub");
    if (text) text.textContent = sub;
    for (const extra of more) extra.remove();
    const tip = `${el.getAttribute("data-label") || el.getAttribute("data-node")}: ${sub}`;
    const title = el.querySelector("title");
    if (title) title.textContent = tip;
    if (el.hasAttribute("aria-label")) el.setAttribute("aria-label", tip);
  }

  function updateGraph(steps) {
    const byInstance = new Map(steps.map((s) => [s.instance, s]));
    for (const el of document.querySelectorAll(".graph [data-node]")) {
      const id = el.getAttribute("data-node");
      const step = byInstance.get(id);
      if (step) {
        const cached = step.cached || step.state === "cached";
        const seconds = took(step);
        let sub = words(step.state);
        if (seconds !== null && !cached) sub += ` · ${duration(seconds)}`;
        updateNode(el, step.state, cached, sub);
        continue;
      }
      const instances = steps.filter((s) => s.node === id);
      if (!instances.length) continue;
      const states = instances.map((s) => s.state);
      const done = states.filter((s) => DONE.includes(s)).length;
      updateNode(el, summary(states), false, `${done} of ${instances.length} done`);
      // A fan-out drawn before its instances existed: link it to the first instance's row.
      const href = el.getAttribute("href");
      if (href === `#step-${id}`) el.setAttribute("href", `#step-${instances[0].instance}`);
    }
  }

  function updateRun(run) {
    const finished = FINISHED.includes(run.state);
    root.dataset.state = run.state;
    root.dataset.finished = String(finished);
    document.getElementById("run-state").replaceChildren(badge(run.state));
    const stateText = document.getElementById("run-state-text");
    const first = stateText.querySelector(".badge");
    if (first) first.replaceWith(badge(run.state));
    document.getElementById("run-reason").textContent =
      run.reason && run.reason !== run.state ? run.reason : "";
    document.getElementById("run-started").replaceChildren(timeNode(run.started_at));
    document.getElementById("run-finished").replaceChildren(timeNode(run.finished_at));
    document.getElementById("run-duration").textContent = duration(run.duration_seconds);
    if (run.slo_breached) {
      const slo = document.getElementById("run-slo");
      if (!slo.querySelector(".state-breached")) {
        const ok = document.getElementById("slo-ok");
        if (ok) ok.replaceWith(badge("breached"));
        else slo.replaceChildren(badge("breached"));
      }
    }
    const cancel = document.getElementById("cancel-run");
    if (cancel) cancel.hidden = finished || run.cancel_requested || !CANCELLABLE.includes(run.state);
    const resume = document.getElementById("resume-run");
    if (resume) resume.hidden = !RESUMABLE.includes(run.state);
    document.getElementById("cancel-note").hidden = !(run.cancel_requested && !finished);
    const live = document.getElementById("live-note");
    if (live && finished) live.hidden = true;
    for (const step of run.steps) updateRow(step);
    updateGraph(run.steps);
    return finished;
  }

  const cancel = document.getElementById("cancel-run");
  if (cancel) {
    cancel.addEventListener("funade:done", () => {
      cancel.hidden = true;
      document.getElementById("cancel-note").hidden = false;
    });
  }

  // A queued run has no spec yet, so no graph to update: once its runner has sent the spec,
  // the page is drawn again (once) with the graph.
  const needsGraph = root.dataset.graph === "no";
  if (root.dataset.finished !== "true") {
    funade.poll(`/api/v1/runs/${runId}${needsGraph ? "?spec=true" : ""}`, 1000, (run) => {
      if (needsGraph && run.spec && Array.isArray(run.spec.nodes) && run.spec.nodes.length) {
        location.reload();
        return false;
      }
      return !updateRun(run);
    });
  }
})();
