// 通办: small helpers on top of htmx. A button with data-confirm asks first; Escape closes an open dialog.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) { event.preventDefault(); event.stopPropagation(); }
}, true);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") document.querySelectorAll("dialog[open]").forEach((d) => d.close());
});

// Flowcharts ([data-panzoom]): the whole chart fitted to the box, panned by dragging, zoomed with the
// buttons (keyboard-reachable) or a double click; the mouse wheel keeps scrolling the page.
function setUpPanZoom(root) {
  if (typeof svgPanZoom !== "function") return;
  root.querySelectorAll("[data-panzoom]:not([data-panzoom-ready])").forEach((wrap) => {
    const svg = wrap.querySelector(".flowchart svg");
    if (!svg) return;
    wrap.setAttribute("data-panzoom-ready", "");
    const box = svg.viewBox && svg.viewBox.baseVal;
    const width = wrap.clientWidth || 800;
    const natural = box && box.width ? (width * box.height) / box.width : 500;
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.style.width = "100%";
    svg.style.height = Math.max(320, Math.min(natural, window.innerHeight * 0.75)) + "px";
    const zoom = svgPanZoom(svg, {
      fit: true, center: true, minZoom: 0.5, maxZoom: 12, zoomScaleSensitivity: 0.3,
      mouseWheelZoomEnabled: false, dblClickZoomEnabled: true, controlIconsEnabled: false,
    });
    wrap.querySelectorAll("[data-zoom]").forEach((button) => button.addEventListener("click", () => {
      const how = button.dataset.zoom;
      if (how === "in") zoom.zoomIn();
      else if (how === "out") zoom.zoomOut();
      else { zoom.resize(); zoom.fit(); zoom.center(); }
    }));
  });
}
document.addEventListener("DOMContentLoaded", () => setUpPanZoom(document));
document.addEventListener("htmx:afterSwap", (event) => setUpPanZoom(event.target));
