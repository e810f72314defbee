// A sign-in link (`funade up` prints one) carries its one-time key in the fragment, which the
// browser never sends anywhere: move it into the form, drop it from the address bar, submit.
"use strict";
(() => {
  const match = location.hash.match(/(?:^#|&)key=([^&]+)/);
  if (!match) return;
  history.replaceState(null, "", location.pathname + location.search);
  const form = document.getElementById("signin-form");
  form.elements.key.value = decodeURIComponent(match[1]);
  form.submit();
})();
