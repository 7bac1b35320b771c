// Filters of a review page: by task, by kept/dropped and by reason. Runs on the page itself (file:// works).
// The state lives in the URL's #hash so a filtered view can be shared and survives going to another page.
(function () {
  "use strict";
  const form = document.getElementById("filters");
  if (!form) return;
  const fields = ["task", "status", "reason"];
  const shown = document.getElementById("shown");
  const nothing = document.getElementById("nothing");
  const images = Array.from(document.querySelectorAll("section.image"));

  function state() {
    const out = {};
    for (const name of fields) out[name] = form.elements[name].value;
    return out;
  }

  function matches(unit, s) {
    return (!s.task || unit.dataset.task === s.task) &&
           (!s.status || unit.dataset.status === s.status) &&
           (!s.reason || unit.dataset.reason === s.reason);
  }

  function apply() {
    const s = state();
    let count = 0;
    for (const image of images) {
      let any = false;
      for (const entry of image.querySelectorAll("article.entry")) {
        let some = false;
        for (const unit of entry.querySelectorAll(".unit")) {
          const ok = matches(unit, s);
          unit.hidden = !ok;
          some = some || ok;
        }
        entry.hidden = !some;
        any = any || some;
      }
      image.hidden = !any;
      if (any) count += 1;
    }
    shown.textContent = count + " of " + images.length + " images on this page shown";
    nothing.hidden = count > 0 || images.length === 0;
    const hash = fields.filter((f) => s[f]).map((f) => f + "=" + encodeURIComponent(s[f])).join("&");
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
    for (const link of document.querySelectorAll("a.page")) {
      link.href = link.getAttribute("href").split("#")[0] + (hash ? "#" + hash : "");
    }
  }

  function load() {
    const raw = location.hash.replace(/^#/, "");
    if (!raw) return;
    for (const part of raw.split("&")) {
      const [name, value] = part.split("=");
      if (fields.includes(name) && form.elements[name]) {
        const v = decodeURIComponent(value || "");
        if (Array.from(form.elements[name].options).some((o) => o.value === v)) form.elements[name].value = v;
      }
    }
  }

  form.addEventListener("change", apply);
  document.getElementById("reset").addEventListener("click", function () {
    for (const name of fields) form.elements[name].value = "";
    apply();
  });
  for (const button of document.querySelectorAll("[data-set-reason]")) {
    button.addEventListener("click", function () {
      form.elements.reason.value = button.dataset.setReason;
      form.elements.status.value = "";
      apply();
      document.getElementById("images").scrollIntoView({ block: "start" });
    });
  }
  load();
  apply();
})();
