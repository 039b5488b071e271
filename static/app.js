// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  function copyText(text, button) {
    var done = function () {
      var old = button.textContent;
      button.textContent = "✔";
      setTimeout(function () { button.textContent = old; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {  // plain http on a LAN: the Clipboard API is not available there
      var area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      document.body.removeChild(area);
      done();
    }
  }

  function fetchSecret(el) {
    return fetch(el.getAttribute("data-secret-url"), {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(function (j) { return j.secret; });
  }

  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t.matches("[data-generate]")) {
      var bytes = new Uint8Array(32);
      window.crypto.getRandomValues(bytes);
      // Standard Base64 with padding: a Standard Webhooks secret (notify.signing.generate_secret).
      document.querySelector(t.getAttribute("data-generate")).value = "whsec_" + btoa(String.fromCharCode.apply(null, bytes));
    } else if (t.matches("[data-reveal]")) {
      var code = t.parentNode.querySelector("[data-secret-url]");
      if (code.dataset.masked) {
        code.textContent = code.dataset.masked; delete code.dataset.masked;
      } else {
        fetchSecret(code).then(function (s) { code.dataset.masked = code.textContent; code.textContent = s; });
      }
    } else if (t.matches("[data-copy-secret]")) {
      fetchSecret(t.parentNode.querySelector("[data-secret-url]")).then(function (s) { copyText(s, t); });
    } else if (t.matches("[data-copy]")) {
      copyText(document.querySelector(t.getAttribute("data-copy")).textContent, t);
    } else if (t.matches("[data-select-all]")) {
      var name = t.getAttribute("data-select-all");
      document.querySelectorAll("input[type=checkbox][name='" + name + "']").forEach(function (box) { box.checked = t.checked; });
    }
  });

  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { e.preventDefault(); return; }
    if (form.dataset.pending) {
      var button = form.querySelector("button");
      if (button) { button.disabled = true; button.textContent = form.dataset.pending; }
    }
  });

  // Settings › General: a mail service preset fills in the host, the port and the security at once
  // (without JavaScript, its "Use" button does it on the server).
  document.querySelectorAll("[data-js-hide]").forEach(function (el) { el.hidden = true; });
  document.querySelectorAll("[data-preset]").forEach(function (select) {
    select.addEventListener("change", function () {
      var option = select.options[select.selectedIndex];
      var form = select.form;
      if (!option.dataset.host) { return; }
      if (form.elements.mail_server) { form.elements.mail_server.value = option.dataset.host; }
      if (form.elements.mail_port) { form.elements.mail_port.value = option.dataset.port; }
      form.querySelectorAll("input[name=mail_security]").forEach(function (radio) {
        radio.checked = radio.value === option.dataset.security;
      });
    });
  });

  // "Select all" shows whether every box of its group is ticked, and follows single changes.
  document.querySelectorAll("[data-select-all]").forEach(function (all) {
    var boxes = document.querySelectorAll("input[type=checkbox][name='" + all.getAttribute("data-select-all") + "']");
    var sync = function () { all.checked = Array.prototype.every.call(boxes, function (b) { return b.checked; }); };
    boxes.forEach(function (box) { box.addEventListener("change", sync); });
    sync();
  });

  // A Test's result: poll the panel until the delivery reaches a final state.
  var result = document.querySelector("[data-poll]");
  if (result && !result.dataset.final) {
    var tries = 0;
    var poll = function () {
      fetch(result.getAttribute("data-poll"), {credentials: "same-origin", cache: "no-store"})
        .then(function (r) {
          var final = r.headers.get("X-Delivery-Final") === "1";
          return r.text().then(function (html) { result.innerHTML = html; return final; });
        })
        .then(function (final) { if (!final && ++tries < 600) { setTimeout(poll, tries < 20 ? 300 : 2000); } });
    };
    setTimeout(poll, 300);
  }
})();
