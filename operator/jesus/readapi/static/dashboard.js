// The dashboard's one script: the runs list asks for its newest rows again every few seconds (while
// the tab is shown and the list is on its first page), so newly archived runs and their phases appear
// without a reload. The rows come rendered (and escaped) by the server; nothing else is fetched.
(function () {
  "use strict";
  var rows = document.querySelector("tbody[data-live]");
  if (!rows) {
    return;
  }
  var seconds = parseInt(rows.getAttribute("data-live"), 10) || 5;
  var status = document.getElementById("live-status");
  var timer = null;
  function refresh() {
    if (document.hidden) {
      return;
    }
    var url = new URL(window.location.href);
    url.searchParams.set("part", "rows");
    fetch(url.toString(), { credentials: "same-origin", redirect: "error" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status === 401 ? "signed out; reload to sign in" : "HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        rows.innerHTML = html;
        status.textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshes every " + seconds + " s.";
      })
      .catch(function (error) {
        status.textContent = "Not refreshed: " + error.message;
        window.clearInterval(timer);
      });
  }
  timer = window.setInterval(refresh, seconds * 1000);
})();
