// The try-it page: a link `/try/<deployment>#key=<key>` opens it. The key is kept in this
// tab's sessionStorage and dropped from the address bar (so it is not bookmarked or shared by
// accident); the page then asks the gateway what the model takes and builds a form for it, or a
// big photo button for an image model, and shows the answer in plain words.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const deployment = decodeURIComponent(location.pathname.split("/")[2] || "");
  const storeName = `funade-try:${deployment}`;
  let info = null;

  // The key ------------------------------------------------------------------------------

  function takeKey() {
    const match = location.hash.match(/(?:^#|&)key=([^&]+)/);
    if (match) {
      const key = decodeURIComponent(match[1]);
      try {
        sessionStorage.setItem(storeName, key);
      } catch (exc) {
        // private mode without storage: the key lives in this page only
      }
      history.replaceState(null, "", location.pathname + location.search);
      return key;
    }
    try {
      return sessionStorage.getItem(storeName);
    } catch (exc) {
      return null;
    }
  }
  const key = takeKey();

  function headers(extra = {}) {
    const out = { Accept: "application/json", ...extra };
    if (key) out.Authorization = `Bearer ${key}`;
    return out;
  }

  // Words for people ---------------------------------------------------------------------

  function status(text) {
    $("status").textContent = text;
    $("status").hidden = !text;
  }

  function problem(title, text, detail = "") {
    $("problem-title").textContent = title;
    $("problem-text").textContent = text;
    $("problem-detail").textContent = detail;
    $("problem").hidden = false;
    status("");
  }

  function clearProblem() {
    $("problem").hidden = true;
  }

  async function failureOf(response) {
    let doc = null;
    try {
      doc = await response.json();
    } catch (exc) {
      doc = null;
    }
    // The protocol's error shape: {"error": "<message> <fix>", "code", "fix"}.
    const error = doc && doc.error;
    const fix = (error && typeof error === "object" && error.fix) || (doc && doc.fix) || "";
    let message = typeof error === "string" ? error : (error && error.message) || "";
    if (fix && message.endsWith(fix)) message = message.slice(0, -fix.length).trim();
    return { status: response.status, message, fix };
  }

  // A refusal in plain words; `fatal` ones (the link no longer works) hide the controls.
  function explain({ status: code, message, fix }) {
    // What the server said, small, for whoever helps; its fix is for admins (CLI commands).
    const detail = code >= 500 || code === 0 ? [message, fix].filter(Boolean).join(" ") : message;
    if (code === 401) {
      if (!key)
        return {
          fatal: true,
          title: "This page needs its link",
          text: "Open the link (or scan the QR code) you were given; it carries the key to this model.",
          detail,
        };
      if (/revoked/i.test(message))
        return {
          fatal: true,
          title: "This link was switched off",
          text: "The person who gave you this link has turned it off. Ask them for a new one.",
          detail,
        };
      if (/expired/i.test(message))
        return {
          fatal: true,
          title: "This link has expired",
          text: "The time this link was made for is over. Ask the person who gave it to you for a new one.",
          detail,
        };
      return {
        fatal: true,
        title: "This link does not work",
        text: "Its key is not valid. Check that you opened the whole link, or ask for a new one.",
        detail,
      };
    }
    if (code === 403) {
      if (/may be used only from|may not call .* from|Address /i.test(message))
        return {
          fatal: true,
          title: "Not from this network",
          text: "This link works only on the network it was made for (for example the classroom's Wi-Fi). Connect to that network and try again.",
          detail,
        };
      return {
        fatal: true,
        title: "This link is not for this model",
        text: "The link's key may not use this model. Ask for the link made for it.",
        detail,
      };
    }
    if (code === 404)
      return {
        fatal: true,
        title: "There is no such model here",
        text: `Nothing called “${deployment}” is served here any more. Check the link.`,
        detail,
      };
    if (code === 413)
      return {
        title: "That is too large",
        text: "The photo or the values are larger than this model takes. Try a smaller photo.",
        detail,
      };
    if (code === 415)
      return {
        title: "The model cannot read that",
        text: "Send a photo (JPEG, PNG or WebP).",
        detail,
      };
    if (code === 429)
      return {
        title: "Too many tries at once",
        text: "Wait a few seconds, then try again.",
        detail,
      };
    if (code >= 400 && code < 500)
      return {
        title: "The model could not use that",
        text: message || "Check what you sent and try again.",
        detail: fix,
      };
    if (code === 500)
      return {
        title: "The model could not answer that",
        text: "It failed on what you sent. Try other values, or another photo.",
        detail,
      };
    if (code === 0)
      return {
        title: "No connection",
        text: "The model's server cannot be reached. Check your Wi-Fi or network and try again.",
        detail,
      };
    return {
      title: "The model is not answering",
      text: "It may be starting or busy. Try again in a moment.",
      detail,
    };
  }

  function refuse(failure) {
    const said = explain(failure);
    problem(said.title, said.text, said.detail);
    $("result").hidden = true; // never an old answer beside a refusal
    if (said.fatal) {
      $("photo-section").hidden = true;
      $("values-form").hidden = true;
      $("expiry").hidden = true;
    }
  }

  async function call(path, init) {
    try {
      return await fetch(path, { credentials: "omit", cache: "no-store", ...init });
    } catch (exc) {
      return null;
    }
  }

  // What the model takes -----------------------------------------------------------------

  const isInt = (datatype) => /^U?INT/.test(datatype);
  const isFloat = (datatype) => /^FP/.test(datatype);

  function dims(spec) {
    return spec.shape.slice(1);
  }

  function fieldCount(spec) {
    const inner = dims(spec);
    if (inner.length === 0) return 1;
    if (inner.length === 1 && inner[0] >= 1 && inner[0] <= 64) return inner[0];
    return null; // any other shape: a JSON field
  }

  function makeField(id, labelText, datatype, value) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = labelText;
    const input = document.createElement("input");
    input.id = id;
    if (datatype === "BOOL") {
      input.type = "checkbox";
      input.checked = Boolean(value);
      input.defaultChecked = input.checked;
      wrap.classList.add("check");
      wrap.append(input, label);
      return wrap;
    }
    if (datatype === "BYTES") {
      input.type = "text";
      input.autocomplete = "off";
    } else {
      input.type = "number";
      input.inputMode = isInt(datatype) ? "numeric" : "decimal";
      input.step = isInt(datatype) ? "1" : "any";
      input.required = true;
    }
    input.value = value === undefined || value === null ? (datatype === "BYTES" ? "" : "0") : String(value);
    input.defaultValue = input.value;
    wrap.append(label, input);
    return wrap;
  }

  // One field per value: inputs of one value each (a DataFrame's columns) side by side under
  // their names; an input of F values ([-1, F]) as a group of F fields; other shapes as JSON.
  function buildForm() {
    const box = $("fields");
    box.replaceChildren();
    let singles = null;
    info.inputs.forEach((spec, i) => {
      const count = fieldCount(spec);
      const example = spec.example || [];
      if (count === 1) {
        if (!singles) {
          singles = document.createElement("div");
          singles.className = "grid";
          box.append(singles);
        }
        singles.append(makeField(`in-${i}-0`, spec.name, spec.datatype, example[0]));
        return;
      }
      singles = null;
      const group = document.createElement("fieldset");
      group.className = "input";
      const legend = document.createElement("legend");
      legend.textContent = spec.name;
      group.append(legend);
      if (count === null) {
        const id = `in-${i}`;
        const label = document.createElement("label");
        label.htmlFor = id;
        label.textContent = `${spec.name}: one row as JSON, of shape [${dims(spec).join(", ")}]`;
        const area = document.createElement("textarea");
        area.id = id;
        area.rows = 4;
        area.spellcheck = false;
        area.value = spec.example ? JSON.stringify(spec.example) : "";
        area.defaultValue = area.value;
        group.append(label, area);
      } else {
        const grid = document.createElement("div");
        grid.className = "grid";
        for (let j = 0; j < count; j += 1)
          grid.append(makeField(`in-${i}-${j}`, `${spec.name} ${j + 1}`, spec.datatype, example[j]));
        group.append(grid);
      }
      box.append(group);
    });
    $("values-form").hidden = false;
  }

  function convert(raw, datatype, label) {
    if (datatype === "BOOL") return Boolean(raw);
    if (datatype === "BYTES") return String(raw);
    const text = String(raw).trim();
    if (text === "") throw new Error(`Fill in “${label}”.`);
    const value = Number(text);
    if (!Number.isFinite(value)) throw new Error(`“${label}” must be a number.`);
    if (isInt(datatype) && !Number.isInteger(value))
      throw new Error(`“${label}” must be a whole number.`);
    return value;
  }

  function shapeOf(value) {
    const shape = [];
    let level = value;
    while (Array.isArray(level)) {
      shape.push(level.length);
      level = level[0];
    }
    return shape;
  }

  function requestBody() {
    const inputs = info.inputs.map((spec, i) => {
      const count = fieldCount(spec);
      if (count === null) {
        const area = $(`in-${i}`);
        let row;
        try {
          row = JSON.parse(area.value);
        } catch (exc) {
          area.focus();
          throw new Error(`“${spec.name}” is not valid JSON: ${exc.message}`);
        }
        const data = [row].flat(Infinity);
        const fixed = dims(spec).every((d) => d >= 0);
        const size = dims(spec).reduce((a, b) => a * b, 1);
        // a flat row of a fixed shape takes that shape; nested JSON brings its own
        const shape = fixed && data.length === size ? dims(spec) : shapeOf(row);
        return { name: spec.name, datatype: spec.datatype, shape: [1, ...shape], data };
      }
      const data = [];
      for (let j = 0; j < count; j += 1) {
        const input = $(`in-${i}-${j}`);
        const label = input.labels[0].textContent;
        try {
          data.push(convert(input.type === "checkbox" ? input.checked : input.value, spec.datatype, label));
        } catch (exc) {
          input.focus();
          throw exc;
        }
      }
      return { name: spec.name, datatype: spec.datatype, shape: [1, ...dims(spec)], data };
    });
    return { inputs };
  }

  // The answer ---------------------------------------------------------------------------

  function number(value) {
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    const abs = Math.abs(value);
    return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? value.toExponential(3) : String(Number(value.toPrecision(4)));
  }

  function firstRow(output) {
    const size = output.shape.slice(1).reduce((a, b) => a * b, 1);
    return output.data.slice(0, size);
  }

  function showResult(doc, response, started) {
    const order = info.outputs.map((o) => o.name);
    const outputs = [...doc.outputs].sort(
      (a, b) => (order.indexOf(a.name) + 1 || 99) - (order.indexOf(b.name) + 1 || 99),
    );
    // The first output, unless another one scores named classes (what people want to read).
    const labelsOf = (output) => (info.outputs.find((o) => o.name === output.name) || {}).labels;
    const main = outputs.find((o) => labelsOf(o)) || outputs[0];
    const ranking = $("ranking");
    ranking.replaceChildren();
    ranking.hidden = true;
    let headline = "";
    let sub = "";
    if (main) {
      const row = firstRow(main);
      const labels = labelsOf(main) || [];
      const className = (index) => (index < labels.length ? labels[index] : String(index));
      const numeric = row.length > 0 && row.every((v) => typeof v === "number");
      const sum = numeric ? row.reduce((a, b) => a + b, 0) : 0;
      const probabilities =
        numeric && row.length > 1 && row.every((v) => v >= 0 && v <= 1) && Math.abs(sum - 1) < 0.02;
      // A row of class probabilities (or scores, by the output's name): the top class first.
      const scores = labels.length > 0 || probabilities || /prob|logit|score|class/i.test(main.name);
      if (numeric && row.length > 1 && scores) {
        const ranked = row.map((v, i) => [i, v]).sort((a, b) => b[1] - a[1]);
        const [top, value] = ranked[0];
        headline = className(top);
        const which = labels.length > 0 ? `${row.length} classes` : `class ${top} of ${row.length}`;
        sub = probabilities
          ? `${Math.round(value * 100)}% sure (${which})`
          : `${which}, score ${number(value)}`;
        for (const [index, v] of ranked.slice(0, 5)) {
          const item = document.createElement("li");
          const name = document.createElement("span");
          name.className = "rank-name";
          name.textContent = className(index);
          const bar = document.createElement("span");
          bar.className = "bar";
          const fill = document.createElement("span");
          const share = probabilities ? v : ranked[0][1] > 0 ? Math.max(0, v / ranked[0][1]) : 0;
          fill.style.width = `${Math.round(share * 100)}%`;
          bar.append(fill);
          const figure = document.createElement("span");
          figure.className = "rank-value";
          figure.textContent = probabilities ? `${Math.round(v * 100)}%` : number(v);
          item.append(name, bar, figure);
          ranking.append(item);
        }
        ranking.hidden = false;
      } else {
        headline = row.map(number).join(", ");
        sub = main.name;
      }
    }
    $("headline").textContent = headline || "—";
    $("headline-sub").textContent = sub;
    const body = $("outputs");
    body.replaceChildren();
    for (const output of outputs) {
      const tr = document.createElement("tr");
      const values = output.data.slice(0, 24).map(number).join(", ") + (output.data.length > 24 ? ", …" : "");
      for (const text of [output.name, `[${output.shape.join(", ")}]`, values]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      body.append(tr);
    }
    const took = Math.round(performance.now() - started);
    const version = response.headers.get("funade-model-version") || info.model_version;
    $("timing").textContent = `Answered in ${took} ms by ${version}.`;
    $("result").hidden = false;
    status("");
  }

  async function predict(body, contentType) {
    clearProblem();
    status("Asking the model…");
    $("result").setAttribute("aria-busy", "true");
    const started = performance.now();
    const response = await call(info.predict_path, {
      method: "POST",
      headers: headers({ "Content-Type": contentType }),
      body,
    });
    $("result").removeAttribute("aria-busy");
    if (response === null) {
      refuse({ status: 0, message: "", fix: "" });
      return;
    }
    if (!response.ok) {
      refuse(await failureOf(response));
      return;
    }
    showResult(await response.json(), response, started);
  }

  // Photos -------------------------------------------------------------------------------

  // A large photo is made smaller first (the model needs few pixels; the upload gets quick).
  async function shrink(file) {
    if (file.size < 1_500_000 || typeof createImageBitmap !== "function") return file;
    try {
      const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
      const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
      return blob || file;
    } catch (exc) {
      return file;
    }
  }

  let previewUrl = null;
  async function onPhoto(event) {
    const file = event.target.files && event.target.files[0];
    if (!file) return;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    $("preview").src = previewUrl;
    $("preview-box").hidden = false;
    $("photo-label-text").textContent = "Take or choose another photo";
    const body = await shrink(file);
    await predict(body, body.type || file.type || "image/jpeg");
    event.target.value = ""; // the same photo again is a new choice
  }

  // Start --------------------------------------------------------------------------------

  async function start() {
    $("title").textContent = `Try ${deployment}`;
    document.title = `Try ${deployment} · funade`;
    const response = await call(`/try/${encodeURIComponent(deployment)}/info`, { headers: headers() });
    if (response === null) {
      refuse({ status: 0, message: "", fix: "" });
      return;
    }
    if (!response.ok) {
      refuse(await failureOf(response));
      return;
    }
    info = await response.json();
    $("subtitle").textContent = `Model ${info.model_version}`;
    if (info.description) {
      $("description").textContent = info.description;
      $("description").hidden = false;
    }
    if (info.key && info.key.expires_at) {
      const until = new Date(info.key.expires_at);
      $("expiry").textContent = `This link works until ${until.toLocaleString([], {
        dateStyle: "medium",
        timeStyle: "short",
      })}.`;
    }
    if (info.takes === "image") {
      $("photo-section").hidden = false;
      $("photo").addEventListener("change", onPhoto);
      status("Take a photo, or choose one, and the model says what it sees. Frame one thing at a time, close up, on a plain background, in good light.");
    } else {
      buildForm();
      status("Change the values and press Predict.");
    }
  }

  $("values-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try {
      body = requestBody();
    } catch (exc) {
      problem("Check the values", exc.message);
      return;
    }
    const button = event.submitter || $("values-form").querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await predict(JSON.stringify(body), "application/json");
    } finally {
      button.disabled = false;
    }
  });

  start();
})();
