// A byte counter under each textarea[data-byte-counter="<limit>"] (in <id>_bytes): providers
// limit bytes, not characters, so the text is never cut; the send checks the real limit.
(function () {
  "use strict";
  var encoder = new TextEncoder();

  function update(area) {
    var out = document.getElementById(area.id + "_bytes");
    if (!out) return;
    var limit = Number(area.getAttribute("data-byte-counter"));
    var size = encoder.encode(area.value).length;
    out.textContent = size.toLocaleString("en") + " / " + limit.toLocaleString("en") + " bytes";
    out.classList.toggle("error", size > limit);
  }

  document.querySelectorAll("textarea[data-byte-counter]").forEach(function (area) {
    area.addEventListener("input", function () { update(area); });
    update(area);
  });
})();
