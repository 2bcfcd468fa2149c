// ChatInput's view (nbchat/input.py): the panel's controls, and the page behaviours only
// a script can give a panel made of plain ipywidgets: following the newest message,
// the ARIA live region, copying a reply's Markdown, and noticing the kernel is gone.

let echoes = 0; // numbers the messages this page sent, so the kernel can say which it took

function button(text, className, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `jupyter-button ${className}`;
  b.textContent = text;
  if (label) {
    b.setAttribute("aria-label", label);
    b.title = label;
  }
  return b;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (an insecure origin) or no permission: the old way.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }
}

// The panel around this view, once the page has attached it (views render detached).
function whenAttached(el, then) {
  let tries = 0;
  const look = () => {
    const root = el.isConnected ? el.closest(".nbchat") : null;
    if (root) then(root);
    else if (tries++ < 3000) setTimeout(look, 100);
  };
  look();
}

// The conversation follows its newest message unless the person scrolled up to read.
function followNewest(log) {
  let stick = true;
  let queued = false;
  let lastTop = log.scrollTop;
  // Only the person scrolling up lets go: a scroll event of our own can arrive after
  // more content did, and must not read as "scrolled away from the bottom".
  log.addEventListener("scroll", () => {
    if (log.scrollHeight - log.scrollTop - log.clientHeight < 8) stick = true;
    else if (log.scrollTop < lastTop) stick = false;
    lastTop = log.scrollTop;
  });
  const follow = () => {
    queued = false;
    if (stick) log.scrollTop = log.scrollHeight;
  };
  const observer = new MutationObserver(() => {
    if (!queued && stick) {
      queued = true;
      requestAnimationFrame(follow);
    }
  });
  observer.observe(log, { childList: true, subtree: true, characterData: true });
  follow();
  return {
    toBottom() {
      stick = true;
      follow();
    },
    disconnect: () => observer.disconnect(),
  };
}

// The approval under a tool card (nbchat/notebook/approval.py): a group named after the
// call, each button labelled with the tool (its tooltip), announced by the log it sits
// in (polite); never an alertdialog, which would take the focus from someone typing.
// Once the kernel is gone, no answer can reach it: the buttons are disabled and the
// question says so.
const GONE_APPROVAL = "not run: the kernel is gone";

function labelApprovals(root, gone) {
  for (const group of root.querySelectorAll(".nbchat-confirm")) {
    if (!group.hasAttribute("role")) {
      const question = group.querySelector(".nbchat-confirm-question");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", `Approval: ${question?.textContent ?? "a tool call"}`);
    }
    for (const b of group.querySelectorAll("button")) {
      if (b.title && b.getAttribute("aria-label") !== b.title) b.setAttribute("aria-label", b.title);
      if (gone) b.disabled = true;
    }
    if (gone && !group.querySelector(".nbchat-confirm-gone")) {
      const note = document.createElement("span");
      note.className = "nbchat-confirm-gone";
      note.textContent = GONE_APPROVAL;
      group.append(note);
    }
  }
  if (gone) {
    for (const verb of root.querySelectorAll(".nbchat-tool-waiting .nbchat-tool-verb")) {
      verb.textContent = GONE_APPROVAL;
    }
  }
}

// "@" + the start of a name just before the caret (not after a letter: an e-mail address).
const MENTION_BEFORE_CARET = /(?:^|[^\p{L}\p{N}_@.+-])@([\p{L}_][\p{L}\p{N}_]*)?$/u;
let listboxes = 0;

// Completion of the kernel's variable names after "@" (ChatInput.mentions: kernel_tools=True).
// The names come live from the kernel over the comm; each list is shown only if it answers
// the latest question. Every name and type is set as text, never as markup.
function mentionCompleter(model, input) {
  const list = document.createElement("ul");
  list.className = "nbchat-mentions";
  list.id = `nbchat-mentions-${++listboxes}`;
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", "Variables");
  list.hidden = true;
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-controls", list.id);
  let asked = 0; // the latest question's number
  let start = -1; // where the "@" being completed is
  let active = 0;
  let items = [];

  const close = () => {
    list.hidden = true;
    list.replaceChildren();
    items = [];
    start = -1;
    input.removeAttribute("aria-activedescendant");
    input.setAttribute("aria-expanded", "false");
  };
  const highlight = (index) => {
    active = (index + items.length) % items.length;
    list.querySelectorAll("[role=option]").forEach((option, i) => {
      option.setAttribute("aria-selected", i === active ? "true" : "false");
      if (i === active) input.setAttribute("aria-activedescendant", option.id);
    });
  };
  const accept = (index) => {
    const name = items[index]?.name;
    if (typeof name !== "string" || start < 0) return close();
    const end = input.selectionStart;
    input.setRangeText(`@${name} `, start, end, "end");
    input.dispatchEvent(new Event("input"));
    close();
    input.focus();
  };
  const show = (received) => {
    items = received.filter((item) => typeof item?.name === "string").slice(0, 50);
    if (!items.length) return close();
    list.replaceChildren(
      ...items.map((item, i) => {
        const option = document.createElement("li");
        option.id = `${list.id}-${i}`;
        option.className = "nbchat-mention-option";
        option.setAttribute("role", "option");
        const name = document.createElement("span");
        name.className = "nbchat-mention-name";
        name.textContent = item.name;
        const type = document.createElement("span");
        type.className = "nbchat-mention-type";
        type.textContent = typeof item.type === "string" ? item.type : "";
        option.append(name, type);
        option.addEventListener("mousedown", (event) => {
          event.preventDefault(); // the box keeps the focus
          accept(i);
        });
        return option;
      }),
    );
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(0);
  };
  const onInput = () => {
    if (!model.get("mentions")) return;
    const before = input.value.slice(0, input.selectionStart);
    const match = MENTION_BEFORE_CARET.exec(before);
    if (!match) return close();
    start = before.length - match[0].length + match[0].indexOf("@");
    try {
      model.send({ event: "complete", prefix: match[1] ?? "", seq: ++asked });
    } catch {
      close(); // the comm is gone: nothing to complete from
    }
  };
  input.addEventListener("input", onInput);
  input.addEventListener("blur", close);
  return {
    list,
    // True when the key was the list's (the panel's own keys then do nothing).
    key(event) {
      if (list.hidden) return false;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        highlight(active + (event.key === "ArrowDown" ? 1 : -1));
      } else if (event.key === "Enter" || event.key === "Tab") {
        accept(active);
      } else if (event.key === "Escape") {
        close();
      } else {
        return false;
      }
      event.preventDefault();
      event.stopPropagation();
      return true;
    },
    message(content) {
      if (content?.event !== "completions" || content.seq !== asked || start < 0) return false;
      show(Array.isArray(content.items) ? content.items : []);
      return true;
    },
    close,
  };
}


// Files and images to attach to the next message: picked (Attach), pasted or dropped.
// Each is checked against the kernel's bounds before it is kept (said in one line if not),
// shown as a chip with its name, and sent with the message as a binary buffer.
function attachmentTray(model, say) {
  const tray = document.createElement("div");
  tray.className = "nbchat-tray";
  tray.hidden = true;
  const picker = document.createElement("input");
  picker.type = "file";
  picker.multiple = true;
  picker.hidden = true;
  picker.className = "nbchat-picker";
  let files = [];

  const draw = () => {
    tray.replaceChildren(
      ...files.map((file, i) => {
        const chip = document.createElement("span");
        chip.className = "nbchat-attachment";
        chip.textContent = `${file.name} (${Math.max(1, Math.round(file.size / 1024))} KB)`;
        const remove = button("Remove", "nbchat-unattach", `Remove ${file.name}`);
        remove.type = "button";
        remove.addEventListener("click", () => {
          files.splice(i, 1);
          draw();
        });
        chip.append(" ", remove);
        return chip;
      }),
    );
    tray.hidden = files.length === 0;
  };
  const add = (list) => {
    const most = model.get("max_attachments");
    const each = model.get("max_attachment_bytes");
    for (const file of list) {
      if (files.length >= most) {
        say(`Not attached: ${file.name}: a message takes at most ${most} attachments.`);
      } else if (file.size > each) {
        say(`Not attached: ${file.name} is ${Math.round(file.size / 1024)} KB, ` +
          `over the ${Math.round(each / 1024)} KB an attachment may be.`);
      } else {
        files.push(new File([file], file.name || "pasted.png", { type: file.type }));
      }
    }
    draw();
  };
  picker.addEventListener("change", () => {
    add([...picker.files]);
    picker.value = "";
  });
  return {
    tray,
    picker,
    add,
    pick: () => picker.click(),
    take() {
      const taken = files;
      files = [];
      draw();
      return taken;
    },
    restore(taken) {
      files = [...taken, ...files];
      draw();
    },
  };
}

function render({ model, el }) {
  const queue = document.createElement("div");
  queue.className = "nbchat-queue";
  const notice = document.createElement("div");
  notice.className = "nbchat-notice";
  notice.setAttribute("role", "alert");
  notice.hidden = true;

  const form = document.createElement("form");
  form.className = "nbchat-controls";
  // Enter, Shift+Enter and Escape are the panel's (the keydown handler below stops
  // them); every other shortcut (Ctrl/Cmd+S above all) reaches JupyterLab. Its
  // single-key notebook commands never match in a text box (:read-write).
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
  const mentions = mentionCompleter(model, input);
  const send = button("Send", "mod-primary nbchat-send", "");
  send.type = "submit";
  const stop = button("Stop", "mod-warning nbchat-stop", "Stop the reply");
  const retry = button("Retry", "nbchat-retry", "Regenerate the last reply");
  const clear = button("Clear", "nbchat-clear", "Clear: start a new conversation");
  const attachButton = button("Attach", "nbchat-attach", "Attach files or images");
  attachButton.type = "button";

  let panel = null; // the .nbchat root, once attached
  let scroller = null;
  let approvals = null; // labels each approval as it appears
  let gone = false;
  const savedHeader = { html: null, className: null };

  const sync = () => {
    const closed = model.get("closed");
    input.placeholder = closed ? "This chat is closed." : model.get("placeholder");
    input.readOnly = closed;
    stop.hidden = !model.get("streaming") || closed;
    for (const b of [send, retry, clear]) b.disabled = closed;
    panel?.classList.toggle("nbchat-closed", closed);
    const log = panel?.querySelector(".nbchat-log");
    if (log) log.setAttribute("aria-busy", model.get("streaming") ? "true" : "false");
  };

  const say = (text) => {
    notice.textContent = text;
    notice.hidden = !text;
  };

  const KERNEL_GONE =
    "This panel's kernel is gone (restarted or shut down): what you type stays here. " +
    "Run the cell again for a new panel.";

  // ipywidgets marks a view whose model lost its kernel (restart, shutdown) with
  // jupyter-widgets-disconnected; the header's own widget can no longer change.
  const checkKernel = () => {
    const lost = el.classList.contains("jupyter-widgets-disconnected") ||
      !!panel?.classList.contains("jupyter-widgets-disconnected");
    if (lost === gone) return;
    gone = lost;
    panel?.classList.toggle("nbchat-kernel-gone", gone);
    const header = panel?.querySelector(".nbchat-status");
    if (header && gone) {
      savedHeader.html = header.innerHTML;
      savedHeader.className = header.className;
      header.className = "nbchat-status nbchat-status-gone";
      header.replaceChildren();
      const dot = document.createElement("span");
      dot.className = "nbchat-dot";
      dot.setAttribute("aria-hidden", "true");
      const state = document.createElement("span");
      state.className = "nbchat-state";
      state.textContent = "kernel gone";
      const detail = document.createElement("span");
      detail.className = "nbchat-detail";
      detail.textContent = "run the cell again for a new panel";
      header.append(dot, " ", state, " ", detail);
    } else if (header && savedHeader.html !== null) {
      header.innerHTML = savedHeader.html;
      header.className = savedHeader.className;
      savedHeader.html = null;
    }
    stop.hidden = gone || stop.hidden;
    if (panel) labelApprovals(panel, gone);
    say(gone ? KERNEL_GONE : "");
  };

  const submit = async () => {
    const text = input.value.trim();
    if (!text || model.get("closed")) return;
    if (gone) {
      say(KERNEL_GONE);
      return;
    }
    const echo = ++echoes;
    const files = attachments.take();
    input.value = ""; // at once: a second Enter while the files are read sends nothing
    grow();
    let buffers;
    try {
      buffers = await Promise.all(files.map((file) => file.arrayBuffer()));
    } catch {
      input.value = text;
      attachments.restore(files);
      say("Not sent: an attached file could not be read; remove it and send again.");
      return;
    }
    const meta = files.map((file) => ({ name: file.name, mime: file.type }));
    try {
      model.send({ event: "submit", text, echo, attachments: meta }, undefined, buffers);
    } catch {
      // The comm is gone: keep the text and the files, say why.
      input.value = text;
      attachments.restore(files);
      gone = false;
      checkKernel();
      say(KERNEL_GONE);
      return;
    }
    if (files.length) sentFiles.set(echo, files);
    say("");
    // Shown at once as queued: the kernel may be busy running a cell.
    const bubble = document.createElement("div");
    bubble.className = "nbchat-msg nbchat-queued";
    bubble.dataset.echo = String(echo);
    const body = document.createElement("div");
    body.className = "nbchat-body";
    body.textContent = text;
    if (files.length) body.textContent += ` (+ ${files.length} attached)`;
    const label = document.createElement("span");
    label.className = "nbchat-queued-label";
    label.textContent = "queued: waiting for the kernel";
    bubble.append(label, body);
    queue.append(bubble);
    input.value = "";
    mentions.close();
    grow();
    scroller?.toBottom();
  };

  const act = (event) => {
    if (gone) {
      say(KERNEL_GONE);
      return;
    }
    try {
      model.send({ event });
    } catch {
      say(KERNEL_GONE);
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (mentions.key(event)) return;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      event.stopPropagation();
      submit();
    } else if (event.key === "Enter") {
      // Shift+Enter is a new line here, never "run the cell": insert it ourselves,
      // since JupyterLab's own Shift+Enter handling may cancel the default.
      event.preventDefault();
      event.stopPropagation();
      input.setRangeText("\n", input.selectionStart, input.selectionEnd, "end");
      grow();
    } else if (event.key === "Escape") {
      // The panel's: it stops a streaming reply, and never leaves for the notebook.
      event.preventDefault();
      event.stopPropagation();
      if (model.get("streaming")) act("stop");
    }
  });
  const attachments = attachmentTray(model, say);
  const sentFiles = new Map(); // echo -> the files sent with it, until the kernel answers
  attachButton.addEventListener("click", () => attachments.pick());
  input.addEventListener("paste", (event) => {
    const pasted = [...(event.clipboardData?.files ?? [])];
    if (!pasted.length) return; // text pastes as text
    event.preventDefault();
    attachments.add(pasted);
  });
  form.addEventListener("dragover", (event) => {
    if (event.dataTransfer?.types?.includes("Files")) event.preventDefault();
  });
  form.addEventListener("drop", (event) => {
    const dropped = [...(event.dataTransfer?.files ?? [])];
    if (!dropped.length) return;
    event.preventDefault();
    attachments.add(dropped);
  });
  stop.addEventListener("click", () => act("stop"));
  retry.addEventListener("click", () => act("retry"));
  clear.addEventListener("click", () => act("clear"));

  const onMessage = (content) => {
    if (mentions.message(content) || content?.event !== "accepted") return;
    queue.querySelector(`[data-echo="${Number(content.echo)}"]`)?.remove();
    const files = sentFiles.get(Number(content.echo)) ?? [];
    sentFiles.delete(Number(content.echo));
    if (typeof content.text === "string" && !input.value) {
      input.value = content.text; // not sent: given back, never lost
      attachments.restore(files);
      grow();
    }
  };

  const onCopy = async (event) => {
    const target = event.target.closest?.("button.nbchat-copy");
    if (!target || !panel?.contains(target)) return;
    // A reply's button carries its Markdown; a code block's copies the block's text.
    const code = target.closest(".nbchat-code")?.querySelector("code")?.textContent;
    const copied = await copyText(target.dataset.markdown ?? code ?? "");
    target.textContent = copied ? "Copied" : "Copy failed";
    setTimeout(() => {
      target.textContent = "Copy";
    }, 1500);
  };

  model.on("change:streaming", sync);
  model.on("change:placeholder", sync);
  model.on("change:closed", sync);
  model.on("msg:custom", onMessage);
  model.on("comm_live_update", () => queueMicrotask(checkKernel));
  // Attach last: Tab from the box reaches Send first, as before.
  form.append(mentions.list, attachments.tray, input, send, stop, retry, clear, attachButton,
    attachments.picker);
  el.append(queue, notice, form);
  sync();

  whenAttached(el, (root) => {
    panel = root;
    const log = root.querySelector(".nbchat-log");
    if (log) {
      log.setAttribute("role", "log");
      log.setAttribute("aria-live", "polite");
      log.setAttribute("aria-label", "Conversation");
      log.tabIndex = 0; // scrollable with the keyboard
      scroller = followNewest(log);
    }
    root.addEventListener("click", onCopy);
    approvals = new MutationObserver(() => labelApprovals(root, gone));
    approvals.observe(root, { childList: true, subtree: true });
    labelApprovals(root, gone);
    sync();
    checkKernel();
  });

  return () => {
    model.off("change:streaming", sync);
    model.off("change:placeholder", sync);
    model.off("change:closed", sync);
    model.off("msg:custom", onMessage);
    scroller?.disconnect();
    approvals?.disconnect();
    panel?.removeEventListener("click", onCopy);
  };
}
export default { render };
