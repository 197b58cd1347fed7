// 通办: small helpers on top of htmx. A button with data-confirm asks first; Escape closes an open dialog.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) { event.preventDefault(); event.stopPropagation(); }
}, true);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") document.querySelectorAll("dialog[open]").forEach((d) => d.close());
});
