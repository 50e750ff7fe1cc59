// Gallery filters of the milr sweep report: by tag, and by outcome between sweeps. Each gallery row
// carries data-tag and data-outcomes ("1" correct, "0" wrong, "-" not run, one per sweep, in order).
// The choice lives in the address too (#tag=counting&outcome=1%3E0), so a filtered view can be shared.
(function () {
  var tag = document.getElementById("filter-tag");
  var outcome = document.getElementById("filter-outcome");
  var count = document.getElementById("filter-count");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.prompt"));

  function keep(row) {
    if (tag.value !== "" && row.getAttribute("data-tag") !== tag.value) return false;
    var want = outcome.value;
    var got = row.getAttribute("data-outcomes").split(" ");
    if (want === "") return true;
    if (want === "disagree") return got.indexOf("1") >= 0 && got.indexOf("0") >= 0;
    if (want === "all-correct") return got.every(function (g) { return g === "1"; });
    if (want === "all-wrong") return got.every(function (g) { return g === "0"; });
    var pair = want.split(">");  // "i>j": sweep i correct where sweep j is wrong
    return got[Number(pair[0])] === "1" && got[Number(pair[1])] === "0";
  }

  function apply() {
    var shown = 0;
    rows.forEach(function (row) {
      var visible = keep(row);
      row.hidden = !visible;
      if (visible) shown += 1;
    });
    count.textContent = "showing " + shown + " of " + rows.length + " prompts";
  }

  function choose(select, value) {
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === value) select.value = value;
    }
  }

  function fromAddress() {
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var kv = part.split("=");
      var value;
      try {
        value = decodeURIComponent(kv[1] || "");
      } catch (e) {
        return; // a mangled address: keep the defaults
      }
      if (kv[0] === "tag") choose(tag, value);
      if (kv[0] === "outcome") choose(outcome, value);
    });
  }

  function toAddress() {
    var hash = "#tag=" + encodeURIComponent(tag.value) + "&outcome=" + encodeURIComponent(outcome.value);
    try {
      history.replaceState(null, "", hash);
    } catch (e) {
      // some browsers refuse replaceState on file:// pages; the filter still works
    }
  }

  function changed() {
    apply();
    toAddress();
  }

  tag.addEventListener("change", changed);
  outcome.addEventListener("change", changed);
  document.getElementById("filters").hidden = false;
  fromAddress();
  apply();
})();
