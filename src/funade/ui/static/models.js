// The model page: the alias form puts the alias's name in the path it PUTs to
// (/api/v1/projects/P/models/M/aliases/NAME, body {"version": N}); ui.js sends it.
"use strict";

(() => {
  const form = document.getElementById("alias-form");
  if (!form) return;
  const name = document.getElementById("alias-name");
  // Runs before ui.js's handler on the document, which reads data-path.
  form.addEventListener("submit", () => {
    form.dataset.path = form.dataset.base + encodeURIComponent(name.value.trim());
    form.dataset.success = `Alias ${name.value.trim()} now points at version ${
      document.getElementById("alias-version").value
    }.`;
  });
})();
