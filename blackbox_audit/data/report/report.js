// report.html's table: search, filters and sorting, all in the page (no network).
(function () {
  "use strict";
  var table = document.getElementById("records");
  if (!table) return;
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.querySelectorAll("tr[data-rank]"));
  var dividers = Array.prototype.slice.call(body.querySelectorAll("tr.divider"));
  var cards = Array.prototype.slice.call(document.querySelectorAll("section.card"));
  var search = document.getElementById("search");
  var hideDegenerate = document.getElementById("hide-degenerate");
  var hideDuplicates = document.getElementById("hide-duplicates");
  var source = document.getElementById("source");
  var finish = document.getElementById("finish");
  var shown = document.getElementById("shown");
  var sortKey = "order", sortDescending = false;

  function fill(select, key) {
    var seen = {};
    rows.forEach(function (row) { seen[row.dataset[key]] = true; });
    Object.keys(seen).sort().forEach(function (value) {
      var option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      select.appendChild(option);
    });
  }
  fill(source, "source");
  fill(finish, "finish");
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });

  function apply() {
    var query = search.value.trim().toLowerCase();
    var count = 0;
    rows.forEach(function (row, i) {
      var visible = (!query || texts[i].indexOf(query) >= 0)
        && !(hideDegenerate.checked && row.dataset.degenerate === "1")
        && !(hideDuplicates.checked && row.dataset.dup === "1")
        && (!source.value || row.dataset.source === source.value)
        && (!finish.value || row.dataset.finish === finish.value);
      row.hidden = !visible;
      if (visible) count += 1;
    });
    cards.forEach(function (card) {
      card.hidden = !!query && card.textContent.toLowerCase().indexOf(query) < 0;
    });
    dividers.forEach(function (divider) { divider.hidden = sortKey !== "order" || !!query || hideDegenerate.checked; });
    shown.textContent = count + " of " + rows.length + " shown";
  }

  function sortBy(key) {
    // "order" is the audit's ranking (dividers in place); a score sorts largest first, then toggles.
    sortDescending = key === "order" ? false : sortKey === key ? !sortDescending : true;
    sortKey = key;
    var byOrder = function (a, b) { return a.dataset.order - b.dataset.order; };
    var ordered = key === "order" ? rows.concat(dividers).sort(byOrder) : rows.slice().sort(function (a, b) {
      var x = parseFloat(a.dataset[key]), y = parseFloat(b.dataset[key]);
      if (isNaN(x) || isNaN(y)) return (isNaN(x) - isNaN(y)) || byOrder(a, b);
      return (sortDescending ? y - x : x - y) || byOrder(a, b);
    }).concat(dividers);
    var fragment = document.createDocumentFragment();
    ordered.forEach(function (row) { fragment.appendChild(row); });
    body.appendChild(fragment);
    apply();
  }

  Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-sort]"), function (th) {
    th.addEventListener("click", function () { sortBy(th.dataset.sort); });
  });
  [search, hideDegenerate, hideDuplicates, source, finish].forEach(function (control) {
    control.addEventListener("input", apply);
    control.addEventListener("change", apply);
  });
  apply();
})();
