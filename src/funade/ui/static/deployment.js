// A deployment's page, kept live without reloading: every 2 s its rollout (state, step,
// progress, history), traffic, revisions' states and replicas from GET /api/v1/deployments/{name},
// and per-revision traffic figures (req/s, error rate, p50, p99) with small charts from
// GET …/stats. The page reloads only when the set of revisions changes. Forms: set traffic
// (PUT …/traffic), roll out another version (PATCH …), and "Try it" (a predict key for this
// deployment, then the gateway's try-it page in a new tab).
"use strict";

(() => {
  const { badge, timeNode } = funade;
  const root = document.getElementById("deployment");
  if (!root) return;
  const data = funade.data("deployment-data");
  const name = data.name;
  const base = `/api/v1/deployments/${encodeURIComponent(name)}`;
  const ACTIVE = ["verifying", "progressing"];
  const POINTS = 60;
  const EVERY = 2; // seconds between refreshes of the figures: one point each
  const UNITS = {
    rps: { unit: "req/s", digits: 2 },
    errors: { unit: "%", digits: 2 },
    p50: { unit: "ms", digits: 1 },
    p99: { unit: "ms", digits: 1 },
  };
  const $ = (id) => document.getElementById(id);

  // Formatting, as the server's filters do it ------------------------------------------------





  function cell(content, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (Array.isArray(content)) td.append(...content);
    else if (content instanceof Node) td.append(content);
    else td.textContent = content;
    return td;
  }

  function code(text) {
    const el = document.createElement("code");
    el.textContent = text;
    return el;
  }

  function emptyRow(columns, text) {
    const tr = document.createElement("tr");
    const td = cell(text, "muted");
    td.colSpan = columns;
    tr.append(td);
    return tr;
  }

  const sameSet = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

  // The rollout, traffic, revisions and replicas ----------------------------------------------

  function progress(deployment) {
    const rollout = deployment.rollout;
    const steps = rollout.strategy === "canary" ? rollout.options.steps || [100] : [100];
    const index = Math.min(rollout.step, steps.length - 1);
    const verified = rollout.history.some((e) => String(e.event || "").startsWith("verified"));
    const started = ["progressing", "succeeded"].includes(rollout.state) || verified;
    return {
      step: started ? index + 1 : 0,
      steps: steps.length,
      planned: started ? steps[index] : 0,
      percent: deployment.traffic[String(rollout.revision)] || 0,
    };
  }

  function renderRollout(deployment) {
    const rollout = deployment.rollout;
    $("rollout-body").hidden = rollout === null;
    $("rollout-none").hidden = rollout !== null;
    const controls = {
      promote: rollout !== null && rollout.state === "progressing",
      abort: rollout !== null && ACTIVE.includes(rollout.state),
      rollback:
        (rollout === null || !ACTIVE.includes(rollout.state)) && deployment.revisions.length > 1,
    };
    for (const [id, shown] of Object.entries(controls)) {
      const button = $(id);
      if (button) button.hidden = !shown;
    }
    const running = controls.abort;
    for (const id of ["traffic-fields", "rollout-fields"]) {
      const fields = $(id);
      if (fields) fields.disabled = running;
    }
    if (rollout === null) return;
    const p = progress(deployment);
    $("r-strategy").textContent = rollout.strategy;
    $("r-revision").textContent =
      `rev ${rollout.revision}` +
      (rollout.stable_revision ? ` (stable: rev ${rollout.stable_revision})` : "");
    $("r-state").replaceChildren(badge(rollout.state));
    $("r-step").textContent = p.step
      ? `step ${p.step} of ${p.steps} (${p.planned}%)`
      : "not started (verifying first)";
    $("r-meter-rev").textContent = rollout.revision;
    const meter = $("r-meter");
    meter.setAttribute("aria-valuenow", p.percent);
    meter.firstElementChild.style.width = `${p.percent}%`;
    $("r-percent").textContent = `${p.percent}%`;
    $("r-next").replaceChildren(
      rollout.state === "progressing" && rollout.next_at
        ? timeNode(rollout.next_at)
        : document.createTextNode("—"),
    );
    $("r-reason").textContent = rollout.reason || "—";
    $("r-started").replaceChildren(timeNode(rollout.created_at));
    $("r-history").replaceChildren(
      ...rollout.history.map((entry) => {
        const li = document.createElement("li");
        li.append(timeNode(entry.at), ` — ${entry.event}`);
        return li;
      }),
    );
  }

  let weightsEdited = false;

  function renderRevisions(deployment) {
    const rows = new Map(
      [...document.querySelectorAll("#revisions-body tr[data-revision]")].map((tr) => [
        tr.dataset.revision,
        tr,
      ]),
    );
    for (const revision of deployment.revisions) {
      const tr = rows.get(String(revision.number));
      if (!tr) continue;
      const status = [badge(revision.status)];
      if (deployment.shadow === revision.number) status.push(" ", badge("shadow"));
      tr.querySelector(".rev-status").replaceChildren(...status);
      tr.querySelector(".rev-status").title = revision.detail.reason || "";
      tr.querySelector(".rev-traffic").textContent =
        `${deployment.traffic[String(revision.number)] || 0}%`;
      const weight = document.querySelector(`#traffic-form .weight[data-revision="${revision.number}"]`);
      if (weight) {
        const routable = ["verified", "retired"].includes(revision.status);
        weight.hidden = !routable;
        weight.querySelector("input").disabled = !routable;
      }
    }
    if (!weightsEdited) {
      for (const input of document.querySelectorAll("#traffic-form input[data-revision]")) {
        input.value = deployment.traffic[input.dataset.revision] || 0;
      }
    }
  }

  function renderReplicas(deployment) {
    const body = $("replicas-body");
    const rows = deployment.replicas.map((replica) => {
      const tr = document.createElement("tr");
      tr.append(
        cell(code(replica.id)),
        cell(`rev ${replica.revision}`),
        cell(badge(replica.state)),
        cell(code(replica.url)),
      );
      return tr;
    });
    body.replaceChildren(...(rows.length ? rows : [emptyRow(4, "No replica runs yet.")]));
    const ready = deployment.replicas.filter((r) => r.state === "ready").length;
    const wantedRevisions = new Set(Object.keys(deployment.traffic).map(Number));
    if (deployment.shadow !== null) wantedRevisions.add(deployment.shadow);
    const rollout = deployment.rollout;
    if (rollout && ACTIVE.includes(rollout.state)) wantedRevisions.add(rollout.revision);
    const wanted = deployment.revisions
      .filter((r) => wantedRevisions.has(r.number))
      .reduce((sum, r) => sum + r.replicas, 0);
    $("replica-count").textContent =
      `· ${ready} of ${Math.max(wanted, deployment.replicas.length)} ready`;
  }

  async function renderPastRollouts() {
    let rollouts;
    try {
      rollouts = await funade.api("GET", `${base}/rollouts?limit=20`);
    } catch (exc) {
      return; // the next change tries again
    }
    const rows = rollouts.map((past) => {
      const tr = document.createElement("tr");
      const revision = [`rev ${past.revision}`];
      if (past.stable_revision) {
        const from = document.createElement("span");
        from.className = "muted";
        from.textContent = `(from rev ${past.stable_revision})`;
        revision.push(" ", from);
      }
      tr.append(
        cell(`#${past.number}`),
        cell(past.strategy),
        cell(revision),
        cell(badge(past.state)),
        cell(timeNode(past.created_at)),
        cell(past.reason || "—"),
      );
      return tr;
    });
    $("rollouts-body").replaceChildren(...(rows.length ? rows : [emptyRow(6, "No rollouts yet.")]));
  }

  let seen = { id: data.rollout_id, state: data.rollout_state };

  function renderDeployment(deployment) {
    if (!sameSet(deployment.revisions.map((r) => r.number), data.revisions)) {
      location.reload(); // a new revision: the page is drawn again with it
      return false;
    }
    $("d-state").replaceChildren(badge(deployment.state));
    renderRollout(deployment);
    renderRevisions(deployment);
    renderReplicas(deployment);
    const now = deployment.rollout
      ? { id: deployment.rollout.id, state: deployment.rollout.state }
      : { id: null, state: null };
    if (now.id !== seen.id || now.state !== seen.state) {
      seen = now;
      renderPastRollouts();
    }
    return true;
  }

  async function refresh() {
    try {
      renderDeployment(await funade.api("GET", base));
    } catch (exc) {
      funade.say(exc.message);
    }
  }

  funade.poll(base, 2000, renderDeployment);
  const controls = $("rollout-controls");
  if (controls) controls.addEventListener("funade:done", refresh);

  // Live figures -------------------------------------------------------------------------------

  const series = new Map(); // revision → {rps, errors, p50, p99}: the last POINTS values
  let ticks = 0;
  const charts = { rps: $("chart-rps"), errors: $("chart-errors"), p50: $("chart-p50"), p99: $("chart-p99") };

  function lineClass(revision) {
    const index = data.revisions.indexOf(revision);
    return `rev-line r${(index < 0 ? revision : index) % 4}`;
  }

  const fixed = (value, digits) =>
    value === null || value === undefined ? "—" : Number(value).toFixed(digits);
  const ms = (value) => (value === null || value === undefined ? "—" : `≤ ${value} ms`);

  function renderStats(stats) {
    const byRevision = new Map(stats.revisions.map((r) => [r.revision, r]));
    for (const revision of byRevision.keys()) {
      if (!series.has(revision)) {
        const pad = () => Array(ticks).fill(null);
        series.set(revision, { rps: pad(), errors: pad(), p50: pad(), p99: pad() });
      }
    }
    ticks = Math.min(ticks + 1, POINTS);
    for (const [revision, line] of series) {
      const f = byRevision.get(revision);
      line.rps.push(f ? f.requests_per_second : 0);
      line.errors.push(f ? f.error_rate * 100 : 0);
      line.p50.push(f ? f.p50_ms : null);
      line.p99.push(f ? f.p99_ms : null);
      for (const values of Object.values(line)) if (values.length > POINTS) values.shift();
    }
    const revisions = [...series.keys()].sort((a, b) => a - b);
    for (const [key, svg] of Object.entries(charts)) {
      const lines = revisions.map((revision) => ({
        name: `rev ${revision}`,
        values: series.get(revision)[key],
        className: lineClass(revision),
      }));
      const options = { ...UNITS[key], points: POINTS, every: EVERY };
      if (key === "errors") options.max = Math.max(1, ...revisions.flatMap((r) => series.get(r).errors));
      funade.chart(svg, lines, options);
    }
    const legend = $("chart-legend");
    legend.replaceChildren(
      ...revisions.map((revision) => {
        const key = document.createElement("span");
        key.className = `key ${lineClass(revision)}`;
        key.textContent = `rev ${revision}`;
        return key;
      }),
    );
    const rows = stats.revisions.map((f) => {
      const tr = document.createElement("tr");
      tr.dataset.revision = f.revision;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = `rev ${f.revision}`;
      tr.append(
        th,
        cell(String(f.requests), "num"),
        cell(fixed(f.requests_per_second, 2), "num"),
        cell(`${fixed(f.error_rate * 100, 2)}%`, "num"),
        cell(ms(f.p50_ms), "num"),
        cell(ms(f.p99_ms), "num"),
      );
      return tr;
    });
    $("stats-body").replaceChildren(
      ...(rows.length ? rows : [emptyRow(6, `No requests in the last ${stats.seconds} s.`)]),
    );
    return true;
  }

  const statsPath = `${base}/stats?seconds=${data.stats_seconds}`;
  funade.api("GET", statsPath).then(renderStats, () => {});
  funade.poll(statsPath, EVERY * 1000, renderStats);

  // Set traffic by hand ------------------------------------------------------------------------

  const trafficForm = $("traffic-form");
  if (trafficForm) {
    trafficForm.addEventListener("input", () => {
      weightsEdited = true;
    });
    trafficForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const weights = {};
      for (const input of trafficForm.querySelectorAll("input[data-revision]:not([disabled])")) {
        const value = Number(input.value || 0);
        if (!Number.isInteger(value) || value < 0 || value > 100) {
          funade.say(`Rev ${input.dataset.revision}: a weight is a whole percentage, 0 to 100.`);
          input.focus();
          return;
        }
        if (value > 0) weights[input.dataset.revision] = value;
      }
      const button = trafficForm.querySelector("button[type=submit]");
      button.setAttribute("aria-busy", "true");
      try {
        const deployment = await funade.api("PUT", `${base}/traffic`, { weights });
        weightsEdited = false;
        renderDeployment(deployment);
        funade.say("Traffic set.", "ok");
      } catch (exc) {
        funade.say(exc.message);
      } finally {
        button.removeAttribute("aria-busy");
      }
    });
  }

  // Roll out another version -------------------------------------------------------------------

  const rolloutForm = $("rollout-form");
  if (rolloutForm) {
    const strategy = $("new-strategy");
    const showOptions = () => {
      for (const el of rolloutForm.querySelectorAll(".canary-only")) el.hidden = strategy.value !== "canary";
      for (const el of rolloutForm.querySelectorAll(".bluegreen-only")) el.hidden = strategy.value !== "bluegreen";
    };
    strategy.addEventListener("change", showOptions);
    showOptions();
    rolloutForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const rollout = { strategy: strategy.value };
      if (strategy.value === "canary") {
        const text = $("new-steps").value.trim();
        if (text) {
          const steps = text.split(/[\s,%]+/).filter(Boolean).map(Number);
          if (steps.some((s) => !Number.isInteger(s))) {
            funade.say(`Canary steps must be whole percentages, e.g. 10, 50, 100; got “${text}”.`);
            $("new-steps").focus();
            return;
          }
          rollout.steps = steps;
        }
        const pause = $("new-pause").value;
        if (pause !== "") rollout.pause_seconds = Number(pause);
      } else if (strategy.value === "bluegreen") {
        const warm = $("new-warm").value;
        if (warm !== "") rollout.warm_seconds = Number(warm);
      }
      const version = $("new-version").value;
      const button = rolloutForm.querySelector("button[type=submit]");
      button.setAttribute("aria-busy", "true");
      button.disabled = true;
      try {
        await funade.api("PATCH", base, { version, rollout });
        location.reload();
      } catch (exc) {
        funade.say(exc.message);
        button.removeAttribute("aria-busy");
        button.disabled = false;
      }
    });
  }

  // Try it -----------------------------------------------------------------------------------

  const tryIt = $("try-it");
  if (tryIt) {
    tryIt.addEventListener("click", async () => {
      // The tab opens now, while the click still counts as the person's (so no popup blocker
      // stops it), and goes to the try-it page once the key exists.
      const tab = window.open("about:blank", "_blank");
      tryIt.setAttribute("aria-busy", "true");
      try {
        const key = await funade.api("POST", "/api/v1/keys", {
          name: "try-it",
          scopes: ["predict"],
          project: tryIt.dataset.project,
          deployment: name,
          expires_at: new Date(Date.now() + 3600 * 1000).toISOString(),
        });
        if (tab) {
          tab.opener = null;
          tab.location.replace(key.try_url);
        } else {
          window.open(key.try_url, "_blank", "noopener");
        }
        const note = $("try-it-link");
        const link = document.createElement("a");
        link.href = key.try_url;
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = "Open the try-it page";
        note.replaceChildren(
          "A predict key for this deployment was made; it expires in an hour. ",
          link,
          " (the link holds the key: share it only with people who may call this deployment).",
        );
        note.hidden = false;
      } catch (exc) {
        if (tab) tab.close();
        funade.say(exc.message);
      } finally {
        tryIt.removeAttribute("aria-busy");
      }
    });
  }
})();
