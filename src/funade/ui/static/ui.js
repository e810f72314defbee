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

  // A small line chart in an <svg viewBox="0 0 W H">: one polyline per series.
  function chart(svg, series, { max = null } = {}) {
    const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
    const values = series.flatMap((s) => s.values).filter((v) => v !== null && isFinite(v));
    const top = max ?? Math.max(1e-9, ...values);
    svg.replaceChildren();
    for (const s of series) {
      const n = s.values.length;
      if (n === 0) continue;
      const points = s.values
        .map((v, i) => {
          const x = n === 1 ? width : (i / (n - 1)) * width;
          const y = height - (Math.min(v ?? 0, top) / top) * (height - 2) - 1;
          return `${x.toFixed(1)},${y.toFixed(1)}`;
        })
        .join(" ");
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", points);
      line.setAttribute("class", `series ${s.className || ""}`);
      svg.append(line);
    }
  }

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
