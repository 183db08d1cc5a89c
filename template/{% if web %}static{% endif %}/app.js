// The page's own behaviour, kept out of the HTML: the Content-Security-Policy allows no inline script.

// The chat form empties once its message is on the socket.
document.addEventListener("htmx:wsAfterSend", (event) => event.target.closest("form")?.reset());

// A notice (the database is busy, a request too big) answers the last request only.
document.addEventListener("htmx:beforeRequest", () => document.getElementById("notice")?.replaceChildren());
