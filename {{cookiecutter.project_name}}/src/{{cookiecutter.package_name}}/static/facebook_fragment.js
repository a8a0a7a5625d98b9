// Every page, while Facebook is enabled (FacebookProvider.page_scripts). Facebook appends
// "#_=_" to its redirect; browsers keep it through our redirects.
if (window.location.hash === "#_=_") {
  history.replaceState(null, "", window.location.pathname + window.location.search);
}
