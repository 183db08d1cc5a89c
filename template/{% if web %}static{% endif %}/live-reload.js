// Development mode only: reload the page once the server restarts after an edit (FastHTML's live-reload
// script, as a file because the Content-Security-Policy allows no inline script).
(() => {
  let attempts = 0;
  const connect = () => {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/live-reload`);
    socket.onopen = async () => {
      const response = await fetch(window.location.href);
      if (response.ok && attempts) window.location.reload();
    };
    socket.onclose = () => {
      !attempts++ ? connect() : setTimeout(connect, 1000);
      if (attempts > 20) window.location.reload();
    };
  };
  connect();
})();
