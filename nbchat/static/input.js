// ChatInput's view: the message box with Send and Stop (nbchat/input.py).
function render({ model, el }) {
  const form = document.createElement("form");
  form.className = "nbchat-controls";
  // Keys typed here are text, not notebook commands (Lumino stops matching
  // keyboard shortcuts at an element carrying this attribute).
  form.setAttribute("data-lm-suppress-shortcuts", "true");
  // A textarea: Enter sends, Shift+Enter starts a new line; it grows with its text.
  const input = document.createElement("textarea");
  input.rows = 1;
  input.className = "nbchat-input";
  input.setAttribute("aria-label", "Message");
  const grow = () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight + 2, 160)}px`;
  };
  input.addEventListener("input", grow);
  const send = document.createElement("button");
  send.type = "submit";
  send.className = "jupyter-button mod-primary nbchat-send";
  send.textContent = "Send";
  const stop = document.createElement("button");
  stop.type = "button";
  stop.className = "jupyter-button mod-warning nbchat-stop";
  stop.textContent = "Stop";
  const sync = () => {
    input.placeholder = model.get("placeholder");
    stop.hidden = !model.get("streaming");
  };
  const submit = () => {
    const text = input.value.trim();
    if (text) {
      model.send({ event: "submit", text });
      input.value = "";
      grow();
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      event.stopPropagation();
      submit();
    } else if (event.key === "Enter" && !event.isComposing) {
      // Shift+Enter is a new line here, never "run the cell": insert it ourselves,
      // since JupyterLab's own Shift+Enter handling may cancel the default.
      event.preventDefault();
      event.stopPropagation();
      input.setRangeText("\n", input.selectionStart, input.selectionEnd, "end");
      grow();
    }
  });
  stop.addEventListener("click", () => model.send({ event: "stop" }));
  model.on("change:streaming", sync);
  model.on("change:placeholder", sync);
  sync();
  form.append(input, send, stop);
  el.append(form);
  return () => {
    model.off("change:streaming", sync);
    model.off("change:placeholder", sync);
  };
}
export default { render };
