// Every page. The Content-Security-Policy allows no inline script or on* handler, so the
// few lines the pages need live here.

// Facebook appends "#_=_" to its redirect; browsers keep it through our redirects.
if (window.location.hash === "#_=_") {
  history.replaceState(null, "", window.location.pathname + window.location.search);
}

// <form data-confirm="Question?">: ask before submitting.
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
}
