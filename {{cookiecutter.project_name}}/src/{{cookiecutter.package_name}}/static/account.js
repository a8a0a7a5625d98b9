// The account page's API tokens: create (the secret is shown once) and revoke.
(function () {
  const form = document.getElementById("new-token");
  const headers = {"Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrfToken};

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const body = {
      name: fields.get("name"),
      scopes: fields.getAll("scopes"),
      expires_in: Number(fields.get("expires_in")),
    };
    const response = await fetch("/api/tokens", {method: "POST", headers, body: JSON.stringify(body)});
    const data = await response.json();
    if (!response.ok) {
      window.alert(data.hint ? `${data.message} ${data.hint}` : data.message);
      return;
    }
    document.getElementById("token-secret").textContent = data.token;
    document.getElementById("token-created").hidden = false;
  });

  document.getElementById("copy-token").addEventListener("click", () => {
    navigator.clipboard.writeText(document.getElementById("token-secret").textContent);
  });

  for (const button of document.querySelectorAll(".revoke-token")) {
    button.addEventListener("click", async () => {
      await fetch("/api/tokens/" + button.dataset.id, {method: "DELETE", headers});
      window.location.reload();
    });
  }
})();
