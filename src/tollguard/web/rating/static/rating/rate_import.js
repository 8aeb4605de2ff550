// Drives a rate import: asks the server for one step at a time and moves the bar.
// Loaded as a file (the Content-Security-Policy allows no inline script); reads
// everything it needs from the page.
"use strict";

(function () {
  const form = document.getElementById("rate-import-step");
  if (!form) {
    return;
  }
  const bar = document.getElementById("rate-import-bar");
  const percent = document.getElementById("rate-import-percent");
  const rows = document.getElementById("rate-import-rows");
  const status = document.getElementById("rate-import-status");
  const button = document.getElementById("rate-import-continue");
  button.hidden = true;

  const labels = {
    validating: "checking",
    applying: "every line is valid; replacing the rates",
    done: "imported",
    failed: "not imported: nothing was changed",
  };

  async function step() {
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (!response.ok) {
      throw new Error("the server answered " + response.status);
    }
    return response.json();
  }

  async function run() {
    try {
      for (;;) {
        const job = await step();
        bar.value = job.percent;
        bar.textContent = job.percent + " %";
        percent.textContent = job.percent + " %";
        rows.textContent = String(job.rows);
        status.textContent = labels[job.state] || job.state;
        if (job.finished) {
          // The page, loaded again, shows the result and every error.
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      status.textContent = "interrupted (" + error.message + "); press Continue to retry";
      button.hidden = false;
    }
  }

  run();
})();
