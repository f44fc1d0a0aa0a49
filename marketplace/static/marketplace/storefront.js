// Storefront behaviour that works without it: pages are plain forms and links.
(function () {
  "use strict";
  document.documentElement.classList.remove("no-js");
  document.documentElement.classList.add("js");
  // A button marked data-once is disabled after its form is submitted, so a double click
  // sends one request. (Money forms also carry a one-time key: the server posts once.)
  document.addEventListener("submit", function (event) {
    var form = event.target;
    form.querySelectorAll("button[data-once]").forEach(function (button) {
      window.setTimeout(function () { button.disabled = true; button.setAttribute("aria-busy", "true"); }, 0);
    });
  });
  // Copy buttons: data-copy="#selector" copies that input's value.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.querySelector(button.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done);
    } else {
      document.execCommand("copy");
      done();
    }
  });
  // The job form: a block chosen sets the GPU class and count to the block's.
  document.addEventListener("change", function (event) {
    if (!event.target.matches("#id_block")) return;
    var data = document.getElementById("block-shapes");
    if (!data) return;
    var shape = JSON.parse(data.textContent)[event.target.value];
    var cls = document.getElementById("id_gpu_class");
    var count = document.getElementById("id_gpu_count");
    if (!shape) return;
    if (cls) cls.value = shape.gpu_class;
    if (count) count.value = shape.gpu_count;
  });
  // The menu at phone width: the button opens and closes the navigation.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-menu-toggle]");
    if (!button) return;
    var nav = document.getElementById(button.getAttribute("aria-controls"));
    if (!nav) return;
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    nav.classList.toggle("open", open);
  });
})();
