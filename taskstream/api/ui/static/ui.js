// taskstream dashboard: live refresh of each page's [data-live] part, "select all", and a
// confirmation before bulk actions. No framework: the server renders every fragment (escaped).
"use strict";

(() => {
  const live = document.querySelector("[data-live]");
  const stamp = document.getElementById("updated");

  // Never replace what the user is working with: a focused control or a ticked checkbox.
  function busy() {
    const focused = document.activeElement;
    return (focused && focused !== document.body && live.contains(focused)) ||
      live.querySelector("input[type=checkbox]:checked") !== null;
  }

  async function refresh() {
    if (document.hidden || busy()) return;
    let response;
    try {
      response = await fetch(location.href, {
        headers: { "X-UI-Live": "1" }, credentials: "same-origin", cache: "no-store",
      });
    } catch {
      if (stamp) stamp.textContent = "Offline: retrying…";
      return;
    }
    if (response.status === 401) { location.reload(); return; } // signed out: the page says why
    if (!response.ok) {
      if (stamp) stamp.textContent = `Update failed (${response.status}): retrying…`;
      return;
    }
    const html = await response.text();
    if (busy()) return;
    live.innerHTML = html;
    if (stamp) stamp.textContent = `Live: updated ${new Date().toLocaleTimeString()}`;
  }

  if (live) {
    const every_ms = Math.max(2, Number(live.dataset.live) || 5) * 1000;
    setInterval(refresh, every_ms);
  }

  document.addEventListener("change", (event) => {
    const all = event.target.closest("[data-select-all]");
    if (!all) return;
    const form = all.closest("form") || document;
    for (const box of form.querySelectorAll(`input[type=checkbox][name="${all.dataset.selectAll}"]`)) {
      box.checked = all.checked;
    }
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
})();
