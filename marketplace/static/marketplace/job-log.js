// The job page's log pane: reads the job's log from the API by offset, every 2 s while
// the job runs (polling holds no server worker between reads), once when it has ended.
(function () {
  "use strict";
  var pane = document.getElementById("job-log");
  if (!pane) { return; }
  var url = pane.getAttribute("data-url");
  var offset = 0;
  var carry = "";

  function append(text) {
    var lines = (carry + text).split("\n");
    carry = lines.pop();
    var atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
    lines.forEach(function (line) {
      var mark = line.slice(0, 2);
      var row = document.createElement("span");
      row.className = mark === "E " ? "log-err" : mark === "S " ? "log-note" : "log-out";
      row.textContent = (mark === "O " || mark === "E " || mark === "S " ? line.slice(2) : line) + "\n";
      pane.appendChild(row);
    });
    if (atBottom) { pane.scrollTop = pane.scrollHeight; }
  }

  function read() {
    fetch(url + "?offset=" + offset, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (body) {
        if (body.purged) { pane.textContent = "The log was deleted after the retention period."; return; }
        if (body.text) { append(body.text); }
        offset = body.next_offset;
        if (offset < body.size) { read(); return; }
        if (!body.ended) { setTimeout(read, 2000); }
      })
      .catch(function () { setTimeout(read, 5000); });
  }
  read();
})();
