// Show <time data-local> in the viewer's own time zone and locale; the title keeps UTC.
(function () {
  "use strict";
  var format = { dateStyle: "medium", timeStyle: "short" };
  function localise(root) {
    var items = (root || document).querySelectorAll("time[data-local]");
    for (var i = 0; i < items.length; i++) {
      var when = new Date(items[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        items[i].textContent = when.toLocaleString(undefined, format);
      }
    }
  }
  window.keymasterLocaliseTimes = localise;
  localise(document);
})();
