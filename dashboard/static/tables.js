// On a phone the staff pages' tables are piles of cards (dashboard.css): each cell is given its
// column's name from the table's header row, so a card still says "When", "Who", "Why" (not a header
// only screen readers hear: its cells' controls say what they are).
document.querySelectorAll("table").forEach(function (table) {
  var header = table.rows[0];
  if (!header || header.querySelector("td")) return;
  var names = Array.prototype.map.call(header.cells, function (cell) {
    return cell.querySelector(".sr-only") ? "" : cell.textContent.trim();
  });
  Array.prototype.slice.call(table.rows, 1).forEach(function (row) {
    Array.prototype.forEach.call(row.cells, function (cell, i) {
      if (cell.tagName === "TD" && names[i] && !cell.hasAttribute("data-label")) {
        cell.setAttribute("data-label", names[i]);
      }
    });
  });
});
