// The dashboard's shared script. Every change goes through the REST API (/api/v1), the same one
// the CLI uses, signed in by the session cookie plus the X-Funade-UI header (which another
// site's page cannot send, so the cookie alone never authorises a change).
"use strict";

const funade = (() => {
  const alerts = () => document.getElementById("alerts");

  function say(message, kind = "error") {
    const box = alerts();
    if (!box) return;
    const item = document.createElement("div");
    item.className = `alert ${kind}`;
    item.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "Dismiss";
    close.addEventListener("click", () => item.remove());
    item.append(" ", close);
    box.append(item);
    if (kind !== "error") setTimeout(() => item.remove(), 6000);
  }

  class ApiError extends Error {
    constructor(status, error) {
      // The API's message already ends with the fix (FunadeError.__str__); add it only if not.
      const fix = error.fix && !(error.message || "").includes(error.fix) ? error.fix : "";
      const text = [error.message, fix].filter(Boolean).join(" ");
      super(text || `The server answered ${status}.`);
      this.status = status;
      this.error = error;
    }
  }

  async function api(method, path, body) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { "X-Funade-UI": "1", Accept: "application/json" },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (exc) {
      throw new ApiError(0, {
        message: "The server cannot be reached.",
        fix: "Check that `funade up` is still running, then try again.",
      });
    }
    if (response.status === 401) {
      location.assign(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
      throw new ApiError(401, { message: "Your session ended; sign in again." });
    }
    const text = await response.text();
    let doc = null;
    try {
      doc = text ? JSON.parse(text) : null;
    } catch (exc) {
      doc = null;
    }
    if (!response.ok) throw new ApiError(response.status, (doc && doc.error) || {});
    return doc;
  }

  // Live figures: call `path` every `ms` while the page is visible; `render(doc)` updates it.
  function poll(path, ms, render) {
    let timer = null;
    let failures = 0;
    async function tick() {
      try {
        const doc = await api("GET", path);
        failures = 0;
        if (render(doc) === false) return; // the renderer says: done (e.g. a run finished)
      } catch (exc) {
        failures += 1;
        if (failures === 3) say(`Live figures paused: ${exc.message}`);
      }
      timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
    }
    timer = setTimeout(tick, ms);
    return () => clearTimeout(timer);
  }

  // A line chart with axes in an <svg class="chart">, drawn at the size the page gives it (so its
  // text is never stretched). The y axis runs from 0 to a round number above the largest value,
  // with ticks and the unit as its title; the x axis is time, the last `points` refreshes `every`
  // seconds apart, newest at the right ("now"). Each series is a polyline (its name and latest
  // value as its <title>); pointing at the chart shows the values of the refresh under the
  // pointer in a tooltip (the figure's .chart-tip). series: [{name, values, className}].
  const SVG = "http://www.w3.org/2000/svg";
  const MARGIN = { top: 10, right: 12, bottom: 34, left: 52 };

  function svgEl(name, attributes = {}, text = null) {
    const el = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, String(value));
    if (text !== null) el.textContent = text;
    return el;
  }

  // The smallest of 1, 2, 2.5, 5 × 10^k at or above `value`.
  function niceTop(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value * (1 - 1e-9)) return step * power;
    return 10 * power;
  }

  function tickText(value) {
    const text = Number(value.toPrecision(3)).toString();
    return text.length > 6 ? value.toExponential(1) : text;
  }

  function chart(svg, series, { max = null, unit = "", digits = 2, points = 60, every = 2 } = {}) {
    const width = Math.max(svg.clientWidth || 0, 160);
    const height = Math.max(svg.clientHeight || 0, 100);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const values = series.flatMap((s) => s.values).filter((v) => v !== null && isFinite(v));
    const top = niceTop(max ?? Math.max(0, ...values));
    const xOf = (slot) => MARGIN.left + (slot / (points - 1)) * plotW;
    const yOf = (v) => MARGIN.top + plotH - (Math.min(Math.max(v, 0), top) / top) * plotH;
    svg.replaceChildren();

    const axes = svgEl("g", { class: "axes" });
    for (const fraction of [0, 0.5, 1]) {
      const v = top * fraction;
      const y = yOf(v);
      axes.append(
        svgEl("line", { class: fraction ? "grid" : "axis", x1: MARGIN.left, x2: MARGIN.left + plotW, y1: y, y2: y }),
        svgEl("text", { class: "tick y-tick", x: MARGIN.left - 6, y: y + 4, "text-anchor": "end" }, tickText(v)),
      );
    }
    axes.append(svgEl("line", { class: "axis", x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + plotH }));
    const span = (points - 1) * every;
    const stepSeconds = span > 90 ? 30 : span > 30 ? 10 : 5;
    for (let ago = Math.floor(span / stepSeconds) * stepSeconds; ago >= 0; ago -= stepSeconds) {
      const x = xOf(points - 1 - ago / every);
      axes.append(
        svgEl("line", { class: "axis", x1: x, x2: x, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4 }),
        svgEl("text", { class: "tick x-tick", x, y: MARGIN.top + plotH + 15, "text-anchor": "middle" }, ago ? `−${ago}` : "now"),
      );
    }
    axes.append(
      svgEl("text", { class: "axis-title x-title", x: MARGIN.left + plotW / 2, y: height - 3, "text-anchor": "middle" }, "seconds ago"),
      svgEl("text", {
        class: "axis-title y-title", x: 0, y: 0, "text-anchor": "middle",
        transform: `translate(11 ${MARGIN.top + plotH / 2}) rotate(-90)`,
      }, unit),
    );
    svg.append(axes);

    const shown = (v) => (v === null || v === undefined || !isFinite(v) ? "—" : `${Number(v).toFixed(digits)} ${unit}`.trim());
    for (const s of series) {
      const n = s.values.length;
      if (n === 0) continue;
      const first = points - n;
      const line = svgEl("polyline", {
        class: `series ${s.className || ""}`,
        points: s.values.map((v, i) => `${xOf(first + i).toFixed(1)},${yOf(v ?? 0).toFixed(1)}`).join(" "),
      });
      line.append(svgEl("title", {}, `${s.name || "series"}: ${shown(s.values[n - 1])} now`));
      svg.append(line);
    }
    const cursor = svgEl("line", { class: "cursor", y1: MARGIN.top, y2: MARGIN.top + plotH, visibility: "hidden" });
    const zone = svgEl("rect", { class: "hover-zone", x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH });
    svg.append(cursor, zone);
    svg.funadeChart = { series, points, every, xOf, shown, cursor, left: MARGIN.left, plotW };
    if (!svg.dataset.hover) {
      svg.dataset.hover = "yes";
      svg.addEventListener("pointermove", (event) => {
        svg.funadePointer = event.clientX - svg.getBoundingClientRect().left;
        chartTip(svg);
      });
      svg.addEventListener("pointerleave", () => {
        svg.funadePointer = null;
        chartTip(svg);
      });
    }
    chartTip(svg);
  }

  // The tooltip of the refresh nearest the pointer (hidden when the pointer is elsewhere).
  function chartTip(svg) {
    const state = svg.funadeChart;
    const tip = svg.parentElement.querySelector(".chart-tip");
    const at = svg.funadePointer;
    if (!state || !tip) return;
    if (at === null || at === undefined || at < state.left - 4 || at > state.left + state.plotW + 4) {
      tip.hidden = true;
      state.cursor.setAttribute("visibility", "hidden");
      return;
    }
    const slot = Math.round(((at - state.left) / state.plotW) * (state.points - 1));
    const slotAt = Math.min(state.points - 1, Math.max(0, slot));
    const ago = (state.points - 1 - slotAt) * state.every;
    const lines = state.series.map((s) => {
      const index = s.values.length - (state.points - slotAt);
      return `${s.name}: ${state.shown(index >= 0 ? s.values[index] : null)}`;
    });
    tip.textContent = `${ago ? `${ago} s ago` : "now"} · ${lines.join(" · ")}`;
    tip.hidden = false;
    const x = state.xOf(slotAt);
    state.cursor.setAttribute("x1", x);
    state.cursor.setAttribute("x2", x);
    state.cursor.setAttribute("visibility", "visible");
  }

  // A graph or table wider than its box scrolls sideways: then the side(s) with more to see are
  // shaded, a graph's hint below it shows, and the box takes the keyboard focus (the arrow keys
  // scroll it) as a region named after what it holds.
  function watchScroller(box) {
    const next = box.nextElementSibling;
    const hint = next && next.classList.contains("graph-hint") ? next : null;
    const inner = box.querySelector("[aria-label]");
    const what = box.classList.contains("graph") ? "Graph" : (inner && inner.getAttribute("aria-label")) || "Table";
    const update = () => {
      const scrolls = box.scrollWidth > box.clientWidth + 1;
      box.classList.toggle("scrolls", scrolls);
      box.classList.toggle("more-left", scrolls && box.scrollLeft > 1);
      box.classList.toggle("more-right", scrolls && box.scrollLeft + box.clientWidth < box.scrollWidth - 1);
      if (hint) hint.hidden = !scrolls;
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.tabIndex = 0;
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", `${what}, scrolls sideways`);
      } else if (!scrolls && box.hasAttribute("tabindex")) {
        for (const name of ["tabindex", "role", "aria-label"]) box.removeAttribute(name);
      }
    };
    box.addEventListener("scroll", update, { passive: true });
    new ResizeObserver(update).observe(box);
    update();
  }
  for (const box of document.querySelectorAll(".graph, .table-wrap")) watchScroller(box);

  function fieldValue(input) {
    if (input.dataset.json !== undefined) return input.value === "" ? null : JSON.parse(input.value);
    if (input.type === "number") return input.value === "" ? null : Number(input.value);
    if (input.type === "checkbox") return input.checked;
    if (input.dataset.list !== undefined)
      return input.value.split(/[\s,]+/).filter(Boolean);
    return input.value === "" && input.dataset.optional !== undefined ? null : input.value;
  }

  function formBody(form) {
    const body = {};
    for (const input of form.querySelectorAll("[name]")) {
      if (input.disabled || input.type === "submit") continue;
      const value = fieldValue(input);
      if (value === null && input.dataset.optional !== undefined) continue;
      body[input.name] = value;
    }
    return body;
  }

  function done(element, doc) {
    const then = element.dataset.done || "reload";
    if (then === "reload") location.reload();
    else if (then !== "none") location.assign(then.replace("{id}", doc && doc.id));
  }

  async function act(element, body) {
    const { method = "POST", path, confirm: question } = element.dataset;
    if (question && !window.confirm(question)) return null;
    element.setAttribute("aria-busy", "true");
    if ("disabled" in element) element.disabled = true;
    try {
      const doc = await api(method, path, body);
      if (element.dataset.success) say(element.dataset.success, "ok");
      element.dispatchEvent(new CustomEvent("funade:done", { detail: doc, bubbles: true }));
      done(element, doc);
      return doc;
    } catch (exc) {
      say(exc.message);
      return null;
    } finally {
      element.removeAttribute("aria-busy");
      if ("disabled" in element) element.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-path]:not(form button)");
    if (!button) return;
    event.preventDefault();
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    act(button, body);
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("form[data-path]")) return;
    event.preventDefault();
    let body;
    try {
      body = formBody(form);
    } catch (exc) {
      say(`A field is not valid JSON: ${exc.message}`);
      return;
    }
    act(form, body);
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });

  // Formatting shared by the page scripts, as the server's filters do it.
  function badge(state) {
    const el = document.createElement("span");
    el.className = `badge state-${state}`;
    el.textContent = state.replace(/_/g, " ");
    return el;
  }

  // The API's times are UTC; one without an offset is read as UTC too, not as local time.
  function parseTime(text) {
    if (!text) return null;
    const iso = /[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text}Z`;
    const ms = Date.parse(iso);
    return isNaN(ms) ? null : ms;
  }

  function ago(ms) {
    const seconds = (Date.now() - ms) / 1000;
    const s = Math.abs(seconds);
    const text =
      s < 45 ? `${Math.floor(s)} s` : s < 2700 ? `${Math.round(s / 60)} min`
      : s < 129600 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
    return seconds < 0 ? `in ${text}` : `${text} ago`;
  }

  function timeNode(text) {
    const ms = parseTime(text);
    if (ms === null) return document.createTextNode("—");
    const el = document.createElement("time");
    const date = new Date(ms);
    el.setAttribute("datetime", date.toISOString());
    el.title = `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
    el.textContent = ago(ms);
    return el;
  }

  // Times as "3 min ago" keep counting while the page stays open.
  function tickTimes() {
    for (const el of document.querySelectorAll("time[datetime]")) {
      el.textContent = ago(Date.parse(el.getAttribute("datetime")));
    }
  }
  setInterval(tickTimes, 15000);

  function data(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  return { api, say, poll, chart, data, act, ApiError, badge, parseTime, ago, timeNode };
})();
