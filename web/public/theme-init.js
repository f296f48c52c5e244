// Applies the theme saved by the explorer's toggle before the first paint; see web/src/theme.ts.
try {
  var saved = window.localStorage.getItem("tandem-theme");
  if (saved === "light" || saved === "dark") document.documentElement.dataset.theme = saved;
} catch (error) {
  // Storage may be disabled: the system theme applies.
}
