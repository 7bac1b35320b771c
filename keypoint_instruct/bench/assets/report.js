// report.html: filter the questions by category; sort them by benchmark order, by category, or by the score
// difference between two models A and B (largest first; questions without both scores last). Runs on the page.
(function () {
  "use strict";
  const form = document.getElementById("controls");
  if (!form) return;
  const list = document.getElementById("questions-list");
  const shown = document.getElementById("shown");
  const sections = Array.from(list.querySelectorAll("section.question"));
  const categories = ["conversation", "detailed_description", "complex_reasoning"];

  function score(section, model) {
    const value = section.getAttribute("data-score-" + model);
    return value === null ? null : parseFloat(value);
  }

  function difference(section, a, b) {
    const x = score(section, a), y = score(section, b);
    return x === null || y === null ? null : x - y;
  }

  function apply() {
    const category = form.elements.category.value;
    const sort = form.elements.sort.value;
    const a = form.elements.a.value, b = form.elements.b.value;
    const nameA = form.elements.a.selectedOptions[0].text, nameB = form.elements.b.selectedOptions[0].text;
    let count = 0;
    for (const section of sections) {
      const ok = !category || section.dataset.category === category;
      section.hidden = !ok;
      if (ok) count += 1;
      const d = difference(section, a, b);
      const chip = section.querySelector(".diff");
      chip.className = "diff " + (d === null ? "" : d > 0 ? "up" : d < 0 ? "down" : "same");
      chip.textContent = a === b || d === null ? "" : nameA + " - " + nameB + ": " + (d > 0 ? "+" : "") + d.toFixed(1);
      for (const card of section.querySelectorAll(".answer[data-model]")) {
        card.classList.toggle("a", card.dataset.model === a);
        card.classList.toggle("b", card.dataset.model === b && a !== b);
      }
    }
    const order = (s) => parseInt(s.dataset.order, 10);
    const sorted = sections.slice().sort(function (x, y) {
      if (sort === "category") {
        return categories.indexOf(x.dataset.category) - categories.indexOf(y.dataset.category) || order(x) - order(y);
      }
      if (sort === "diff") {
        const dx = difference(x, a, b), dy = difference(y, a, b);
        if (dx === null || dy === null) return (dx === null) - (dy === null) || order(x) - order(y);
        return dy - dx || order(x) - order(y);
      }
      return order(x) - order(y);
    });
    for (const section of sorted) list.appendChild(section);
    shown.textContent = count + " of " + sections.length + " questions shown";
  }

  form.addEventListener("change", apply);
  apply();
})();
