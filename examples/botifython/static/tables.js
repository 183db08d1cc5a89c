// A result's table (toolbox/tables.py marks it data-page) pages and sorts in the browser, without fetching the run
// again: it holds up to a thousand of the run's rows and shows data-page of them at once, with Previous and Next.
// A click on a column's header (or Enter on it) sorts the rows by that column, a second click the other way:
// numbers as numbers, dates as dates, other text as people read it (item 2 before item 10), missing cells last.
// A file of its own rather than inline script, which the page's Content Security Policy refuses.
"use strict";

(() => {
  const MISSING = new Set(["", "nan", "NaN", "NaT", "None", "<NA>"]);
  const ISO_DATE = /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/;
  const TEXT = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
  const number = (text) => (text === "inf" ? Infinity : text === "-inf" ? -Infinity : Number(text));

  // How a column's cells compare: as numbers, as dates (ISO text compares in time order), or as text.
  function comparer(texts) {
    const known = texts.filter((text) => !MISSING.has(text));
    if (known.every((text) => !Number.isNaN(number(text)))) return (a, b) => number(a) - number(b);
    if (known.every((text) => ISO_DATE.test(text))) return (a, b) => (a < b ? -1 : a > b ? 1 : 0);
    return TEXT.compare;
  }

  function enhance(table) {
    if (table.dataset.enhanced) return;  // a row swapped in again brings a table of its own
    table.dataset.enhanced = "true";
    const size = Number(table.dataset.page);
    const body = table.tBodies[0];
    let rows = [...body.rows];
    let page = 0;
    const pages = Math.ceil(rows.length / size);
    const pager = document.createElement("p");
    const [previous, where, next] = ["button", "small", "button"].map((tag) => document.createElement(tag));
    previous.textContent = "‹ Previous";
    next.textContent = "Next ›";
    for (const button of [previous, next]) {
      button.type = "button";
      button.className = "outline secondary";
    }
    previous.addEventListener("click", () => show(page - 1));
    next.addEventListener("click", () => show(page + 1));
    pager.append(previous, " ", where, " ", next);
    if (pages > 1) table.after(pager);

    function show(wanted) {
      page = Math.min(Math.max(wanted, 0), pages - 1);
      rows.forEach((row, at) => { row.hidden = Math.floor(at / size) !== page; });
      where.textContent = `rows ${(page * size + 1).toLocaleString()}–` +
        `${Math.min(rows.length, (page + 1) * size).toLocaleString()} of ${rows.length.toLocaleString()}`;
      previous.disabled = page === 0;
      next.disabled = page === pages - 1;
    }

    function sortBy(header, column) {
      const direction = header.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      const text = (row) => row.cells[column]?.textContent ?? "";
      const compare = comparer(rows.map(text));
      const keyed = rows.map((row) => [text(row), row]);
      keyed.sort(([a], [b]) => (MISSING.has(a) - MISSING.has(b)) || direction * compare(a, b));
      rows = keyed.map(([, row]) => row);
      body.append(...rows);
      for (const other of header.parentElement.cells) other.setAttribute("aria-sort", "none");
      header.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
      show(0);
    }

    [...table.tHead.rows[0].cells].forEach((header, column) => {
      header.tabIndex = 0;
      header.title = "Sort by this column";
      header.setAttribute("aria-sort", "none");
      header.addEventListener("click", () => sortBy(header, column));
      header.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(header, column);
        }
      });
    });
    show(0);
  }

  // Every piece of page htmx loads (the page itself, a task row swapped in when its run ends).
  htmx.onLoad((root) => {
    if (root.matches?.("table[data-page]")) enhance(root);
    root.querySelectorAll?.("table[data-page]").forEach(enhance);
  });
})();
