// The keys page: a new key (shown once, with a copy button), a sheet of group tokens with their
// QR codes (one POST /api/v1/keys each), revoking in place, and live prediction counts.
"use strict";

(() => {
  const { badge } = funade;
  const data = funade.data("keys-data") || {};
  const $ = (id) => document.getElementById(id);

  const inSeconds = (value) =>
    value ? new Date(Date.now() + Number(value) * 1000).toISOString() : undefined;
  const networks = (text) => text.split(/[\s,]+/).filter(Boolean);
  const when = (iso) =>
    iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "never";

  // A QR code (SVG from the API) as an image: it is drawn, never run.
  function qrImage(img, svg, alt) {
    const standalone = /^<svg[^>]*\sxmlns=/.test(svg)
      ? svg
      : svg.replace(/^<svg/, '<svg xmlns="http://www.w3.org/2000/svg"');
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(standalone)}`;
    img.alt = alt;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }


  // An expiry as the rows the page came with show it: "in 8 h", the date on hover.
  function expiry(iso) {
    const td = document.createElement("td");
    td.append(iso ? funade.timeNode(iso) : document.createTextNode("never"));
    return td;
  }

  function revokeButton(key) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger small";
    button.textContent = "Revoke";
    button.setAttribute("aria-label", `Revoke ${key.name}`);
    button.dataset.path = `/api/v1/keys/${key.id}`;
    button.dataset.method = "DELETE";
    button.dataset.confirm = `Revoke ${key.name}? Whatever uses it stops working within seconds.`;
    button.dataset.done = "none";
    button.dataset.success = `Revoked ${key.name}.`;
    return button;
  }

  // A row for a key made on this page (the rest of the list came with the page).
  function addRow(key, group) {
    const tr = document.createElement("tr");
    tr.dataset.keyId = key.id;
    const name = cell(key.name);
    if (key.allow_cidrs && key.allow_cidrs.length) {
      const limit = document.createElement("span");
      limit.className = "muted";
      limit.textContent = ` (${group ? "" : "only from "}${key.allow_cidrs.join(", ")})`;
      name.append(limit);
    }
    const state = document.createElement("td");
    state.dataset.state = "";
    state.append(badge("active"));
    const predictions = cell("0", "num");
    const action = document.createElement("td");
    action.append(revokeButton(key));
    const cells = group
      ? [name, cell(key.deployment), cell("just now"), expiry(key.expires_at), cell("—"), predictions, state, action]
      : [
          name,
          cell(key.kind),
          cell(key.scopes.join(", ")),
          cell(key.deployment || "—"),
          cell("just now"),
          expiry(key.expires_at),
          cell("—"),
          predictions,
          state,
          action,
        ];
    if (group) predictions.dataset.predictions = "";
    tr.append(...cells);
    const body = $(group ? "groups-body" : "keys-body");
    const empty = body.querySelector("td[colspan]");
    if (empty) empty.parentElement.remove();
    if (group && body.dataset.batch === key.expires_at) {
      // the next token of the sheet being made: after the one before it
      const last = body.querySelector(`tr[data-key-id="${body.dataset.last}"]`);
      if (last) last.after(tr);
      else body.prepend(tr);
    } else body.prepend(tr);
    if (group) {
      body.dataset.batch = key.expires_at;
      body.dataset.last = key.id;
    }
    if (group) {
      $("groups-table").hidden = false;
      const note = $("groups-empty");
      if (note) note.remove();
    }
  }

  // Revoked: the row says so at once (no reload, so a sheet on screen stays).
  document.addEventListener("funade:done", (event) => {
    const doc = event.detail;
    if (!doc || !doc.revoked_at) return;
    for (const row of document.querySelectorAll(`tr[data-key-id="${doc.id}"]`)) {
      const state = row.querySelector("[data-state]");
      if (state) state.replaceChildren(badge("revoked"));
      const button = row.querySelector("button[data-method=DELETE]");
      if (button) button.remove();
    }
  });

  // A new key ----------------------------------------------------------------------------

  function showKey(key) {
    $("new-key-name").textContent = key.name;
    $("new-key-text").value = key.key;
    const tryBox = $("new-key-try");
    tryBox.hidden = !key.try_url;
    if (key.try_url) {
      $("new-key-url").href = key.try_url;
      $("new-key-url").textContent = key.try_url;
      qrImage($("new-key-qr"), key.qr_svg, `QR code of the try-it link for ${key.name}`);
    }
    $("new-key").hidden = false;
    $("new-key").scrollIntoView({ block: "start" });
    $("new-key-h").focus();
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (exc) {
      const field = $("new-key-text");
      field.focus();
      field.select();
      try {
        return document.execCommand("copy");
      } catch (exc2) {
        return false;
      }
    }
  }

  const copyButton = $("copy-key");
  if (copyButton)
    copyButton.addEventListener("click", async () => {
      if (await copy($("new-key-text").value)) funade.say("Copied the key.", "ok");
      else funade.say("The browser did not let the page copy; the key is selected: copy it yourself.");
    });

  const keyForm = $("new-key-form");
  if (keyForm)
    keyForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = keyForm.elements;
      const scopes = [...keyForm.querySelectorAll("input[name=scope]:checked")].map((i) => i.value);
      const global = form.global && form.global.checked;
      const body = {
        name: form.name.value.trim(),
        scopes,
        project: global ? null : data.project,
        expires_at: inSeconds(form.expires.value),
        deployment: form.deployment.value || undefined,
        allow_cidrs: networks(form.allow.value).length ? networks(form.allow.value) : undefined,
      };
      const button = keyForm.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const key = await funade.api("POST", "/api/v1/keys", body);
        showKey(key);
        addRow(key, false);
        keyForm.reset();
      } catch (exc) {
        funade.say(exc.message);
      } finally {
        button.disabled = false;
      }
    });

  // Group tokens -------------------------------------------------------------------------

  function groupNames(form) {
    const listed = form.names.value
      .split("\n")
      .map((n) => n.trim())
      .filter(Boolean);
    if (listed.length) return listed;
    const count = Number(form.count.value);
    if (!Number.isInteger(count) || count < 1 || count > 60)
      throw new Error("The number of groups must be a whole number from 1 to 60.");
    const label = form.label.value.trim() || "Group";
    return Array.from({ length: count }, (_, i) => `${label} ${i + 1}`);
  }

  function showSheet(deployment, keys) {
    const cards = $("sheet-cards");
    cards.replaceChildren();
    const template = $("group-card-template");
    for (const key of keys) {
      const card = template.content.firstElementChild.cloneNode(true);
      card.querySelector(".group-name").textContent = key.name;
      qrImage(card.querySelector(".group-qr"), key.qr_svg, `QR code for ${key.name}`);
      card.querySelector(".group-deployment").textContent = deployment;
      card.querySelector(".group-url").textContent = key.try_url;
      card.querySelector(".group-expiry").textContent = `Works until ${when(key.expires_at)}`;
      cards.append(card);
    }
    // A link only this machine reaches (127.0.0.1): say so before anyone prints it.
    const warning = keys.length ? keys[0].gateway_warning : null;
    // `names` in the warning are code: shown as <code>, not as backticks (text only, no HTML).
    $("sheet-warning").replaceChildren(
      ...(warning || "").split("`").map((part, i) => {
        if (i % 2 === 0) return document.createTextNode(part);
        const code = document.createElement("code");
        code.textContent = part;
        return code;
      }),
    );
    $("sheet-warning").hidden = !warning;
    $("sheet-deployment").textContent = deployment;
    $("sheet-expiry").textContent = keys.length ? when(keys[0].expires_at) : "";
    $("group-sheet").hidden = false;
    $("group-sheet").scrollIntoView({ block: "start" });
    $("sheet-h").focus();
  }

  const printButton = $("print-sheet");
  if (printButton) printButton.addEventListener("click", () => window.print());
  const closeButton = $("close-sheet");
  if (closeButton)
    closeButton.addEventListener("click", () => {
      if (window.confirm("Close the sheet? Its QR codes cannot be shown again (the tokens keep working)."))
        $("group-sheet").hidden = true;
    });

  const groupForm = $("group-form");
  if (groupForm)
    groupForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = groupForm.elements;
      let names;
      try {
        names = groupNames(form);
      } catch (exc) {
        funade.say(exc.message);
        return;
      }
      if (names.length > 60) {
        funade.say("List at most 60 groups at once.");
        return;
      }
      const deployment = form.deployment.value;
      const expires = inSeconds(form.expires.value);
      const allow = networks(form.allow.value);
      const progress = $("group-progress");
      const button = groupForm.querySelector("button[type=submit]");
      button.disabled = true;
      const made = [];
      try {
        for (const name of names) {
          progress.textContent = `Making ${made.length + 1} of ${names.length}…`;
          const key = await funade.api("POST", "/api/v1/keys", {
            name,
            scopes: ["predict"],
            project: data.project,
            deployment,
            kind: "group",
            expires_at: expires,
            allow_cidrs: allow.length ? allow : undefined,
          });
          made.push(key);
          addRow(key, true);
        }
        progress.textContent = `Made ${made.length} QR code${made.length === 1 ? "" : "s"}.`;
      } catch (exc) {
        progress.textContent = made.length ? `Made ${made.length} of ${names.length}, then:` : "";
        funade.say(exc.message);
      } finally {
        button.disabled = false;
      }
      if (made.length) showSheet(deployment, made);
    });

  // Which group made predictions, as they come in.
  if ($("groups-body"))
    funade.poll(
      `/api/v1/keys?kind=group&include_revoked=true&project=${encodeURIComponent(data.project)}`,
      5000,
      (keys) => {
        for (const key of keys) {
          const row = document.querySelector(`#groups-body tr[data-key-id="${key.id}"]`);
          if (!row) continue;
          const count = row.querySelector("[data-predictions]");
          if (count && count.textContent !== String(key.predictions)) count.textContent = key.predictions;
        }
        return true;
      },
    );
})();
