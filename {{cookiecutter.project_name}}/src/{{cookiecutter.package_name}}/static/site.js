// Every page. The Content-Security-Policy allows no inline script or on* handler, so the
// few lines the pages need live here (and a provider's own in the scripts its adapter
// declares, `page_scripts`).

// <form data-confirm="Question?">: ask before submitting.
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
}
