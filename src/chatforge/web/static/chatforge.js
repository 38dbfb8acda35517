// chatforge page helpers. Pages work without JavaScript; this only adds comfort.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Move keyboard focus to the first flash message so screen readers announce the outcome.
  const flash = document.querySelector(".flashes .flash");
  if (flash) {
    flash.setAttribute("tabindex", "-1");
    flash.focus({ preventScroll: true });
  }
});
