// A sign-in link (`funade up` prints one) carries its one-time token in the fragment, which the
// browser never sends anywhere: move it into the form, drop it from the address bar, submit.
// Only a sign-in link is submitted so (an API key in the fragment is not): another site could
// link here with its own key and sign the visitor in as itself.
"use strict";
(() => {
  const match = location.hash.match(/(?:^#|&)link=([^&]+)/);
  if (!match) return;
  history.replaceState(null, "", location.pathname + location.search);
  const link = decodeURIComponent(match[1]);
  if (!link.startsWith("fndlink_")) return;
  const form = document.getElementById("signin-form");
  form.elements.key.value = link;
  form.submit();
})();
