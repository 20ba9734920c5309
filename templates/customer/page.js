// The customer page: uploads with progress, and the signature pad. No third-party code.
(function () {
  "use strict";
  var base = document.body.getAttribute("data-base");
  var csrf = document.body.getAttribute("data-csrf");

  var uploadForm = document.getElementById("upload-form");
  if (uploadForm) {
    uploadForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = document.getElementById("file");
      var status = document.getElementById("upload-status");
      var bar = document.getElementById("upload-progress");
      var file = input.files && input.files[0];
      if (!file) { status.textContent = "Choose a file first."; return; }
      if (file.size > 8000000) { status.textContent = "This file is larger than 8 MB."; return; }
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", base + "/documents?filename=" + encodeURIComponent(file.name));
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      bar.hidden = false; bar.value = 0;
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); }
      });
      xhr.addEventListener("load", function () {
        var answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = {}; }
        if (xhr.status === 201) {
          bar.value = 100;
          status.textContent = "Uploaded: " + answer.name;
          var li = document.createElement("li");
          li.textContent = answer.name;
          document.getElementById("uploads").appendChild(li);
          input.value = "";
        } else {
          status.textContent = answer.message || "The upload failed.";
        }
      });
      xhr.addEventListener("error", function () { status.textContent = "The upload failed: check your connection."; });
      status.textContent = "Uploading…";
      xhr.send(file);
    });
  }

  var pad = document.getElementById("pad");
  var signForm = document.getElementById("sign-form");
  if (!pad || !signForm) { return; }
  var ctx = pad.getContext("2d");
  var drawn = false, drawing = false, last = null;
  ctx.lineWidth = 3; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#10253f";
  function point(e) {
    var r = pad.getBoundingClientRect();
    return { x: (e.clientX - r.left) * pad.width / r.width, y: (e.clientY - r.top) * pad.height / r.height };
  }
  pad.addEventListener("pointerdown", function (e) {
    drawing = true; last = point(e); pad.setPointerCapture(e.pointerId);
    ctx.beginPath(); ctx.arc(last.x, last.y, 1, 0, 2 * Math.PI); ctx.stroke();
  });
  pad.addEventListener("pointermove", function (e) {
    if (!drawing) { return; }
    var p = point(e);
    ctx.beginPath(); ctx.moveTo(last.x, last.y); ctx.lineTo(p.x, p.y); ctx.stroke();
    last = p; drawn = true;
  });
  function stop() { drawing = false; }
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  function clear() { ctx.clearRect(0, 0, pad.width, pad.height); drawn = false; }
  document.getElementById("pad-clear").addEventListener("click", clear);
  document.getElementById("pad-typed").addEventListener("click", function () {
    var name = document.getElementById("signer_name").value.trim();
    if (!name) { document.getElementById("signer_name").focus(); return; }
    clear();
    ctx.font = "italic 56px serif"; ctx.fillStyle = "#10253f"; ctx.textBaseline = "middle";
    ctx.fillText(name, 24, pad.height / 2, pad.width - 48);
    drawn = true;
  });
  signForm.addEventListener("submit", function (ev) {
    var error = document.getElementById("pad-error");
    if (!drawn) { ev.preventDefault(); error.hidden = false; pad.focus(); return; }
    error.hidden = true;
    document.getElementById("signature-data").value = pad.toDataURL("image/png");
  });
})();
