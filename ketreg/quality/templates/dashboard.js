(function () {
  var site = document.getElementById('f-site'), cat = document.getElementById('f-category'),
      failed = document.getElementById('f-failed');
  function apply() {
    var rows = document.querySelectorAll('#check-table tbody tr');
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i], show = (!site.value || r.dataset.site === site.value) &&
        (!cat.value || r.dataset.category === cat.value) && (!failed.checked || r.dataset.passed === 'false');
      r.style.display = show ? '' : 'none';
    }
  }
  [site, cat, failed].forEach(function (el) { el.addEventListener('change', apply); });
  document.addEventListener('click', function (event) {
    if (!event.target.classList.contains('copy')) { return; }
    var code = event.target.parentNode.querySelector('code'), range = document.createRange();
    range.selectNodeContents(code);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try { document.execCommand('copy'); event.target.textContent = 'Copied'; }
    catch (e) { event.target.textContent = 'Press Ctrl+C'; }
  });
})();
