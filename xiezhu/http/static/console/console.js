// The board follows /board/events (Server-Sent Events) and swaps its rows in when they change.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var rows = document.getElementById("board-rows");
  var source = new EventSource(live.dataset.events);
  source.addEventListener("open", function () { live.classList.add("on"); });
  source.addEventListener("error", function () { live.classList.remove("on"); });
  source.addEventListener("board", function () {
    fetch(live.dataset.rows, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { rows.innerHTML = html; } });
  });
}());
