// 流程设计: the YAML editor (CodeMirror 5) over the form's textarea, which stays the source of truth:
// every change is copied into it and announced as a keyup, so htmx's `keyup changed delay:800ms` posts
// it to /studio/check. The problems that come back are marked at their lines (lint addon); Ctrl-Space
// (or typing a key) completes keys and values from the JSON Schema of the definition language.
(function () {
  "use strict";
  const textarea = document.getElementById("yaml");
  if (!textarea || !window.CodeMirror) return; // without the editor the plain textarea still works
  const Pos = CodeMirror.Pos;
  let problems = [];
  let schema = null;
  let escaped = false; // Escape, then Tab: leave the editor (keyboard users are not trapped in it)
  const departments = JSON.parse(textarea.dataset.departments || "[]");

  const editor = CodeMirror.fromTextArea(textarea, {
    mode: "yaml",
    lineNumbers: true,
    indentUnit: 2,
    tabSize: 2,
    indentWithTabs: false,
    styleActiveLine: true,
    matchBrackets: true,
    viewportMargin: 40,
    lineWrapping: true,
    screenReaderLabel: "流程定义（YAML）",
    gutters: ["CodeMirror-lint-markers", "CodeMirror-linenumbers"],
    lint: { getAnnotations: annotations, lintOnChange: false, tooltips: true },
    hintOptions: { hint: schemaHint, completeSingle: false },
    extraKeys: {
      "Ctrl-Space": "autocomplete",
      Esc: () => { escaped = true; },
      Tab: (cm) => {
        if (escaped) { escaped = false; return CodeMirror.Pass; }
        if (cm.somethingSelected()) cm.indentSelection("add");
        else cm.replaceSelection(" ".repeat(cm.getOption("indentUnit")), "end"); // YAML: spaces, never tabs
      },
      "Shift-Tab": (cm) => {
        if (escaped) { escaped = false; return CodeMirror.Pass; }
        cm.indentSelection("subtract");
      },
    },
  });
  editor.on("keydown", (_cm, event) => { if (event.key !== "Escape" && event.key !== "Tab") escaped = false; });
  editor.on("change", () => {
    editor.save();
    textarea.dispatchEvent(new KeyboardEvent("keyup", { bubbles: true }));
  });
  editor.on("inputRead", (cm, change) => {
    if (change.origin === "+input" && /^[A-Za-z_]$/.test(change.text[0]) && !cm.state.completionActive) {
      cm.showHint({ completeSingle: false });
    }
  });
  window.studioEditor = editor; // for tests and the console

  // ---------------------------------------------------------------------------------------------
  // problems at their lines

  function readProblems() {
    const data = document.getElementById("problems-data");
    problems = data ? JSON.parse(data.textContent || "[]") : [];
  }

  function annotations(_text, _options, cm) {
    return problems.map((p) => {
      const line = Math.min(Math.max(p.line - 1, 0), cm.lineCount() - 1);
      const text = cm.getLine(line) || "";
      const from = Math.min(Math.max(p.column - 1, 0), text.length);
      let to = from;
      while (to < text.length && !/[,{}\[\]#]/.test(text[to])) to++;
      to = Math.max(from + 1, to);
      return { from: Pos(line, from), to: Pos(line, to), message: p.message, severity: p.severity };
    });
  }

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "check") { readProblems(); editor.performLint(); }
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.goto");
    if (!button) return;
    const line = Number(button.dataset.line) - 1;
    const ch = Number(button.dataset.column) - 1;
    editor.focus();
    editor.setCursor(Pos(line, ch));
    editor.scrollIntoView(Pos(line, ch), 120);
  });
  readProblems();
  editor.performLint();

  // ---------------------------------------------------------------------------------------------
  // completion from the JSON Schema

  fetch(textarea.dataset.schema, { credentials: "same-origin" })
    .then((answer) => (answer.ok ? answer.json() : null))
    .then((document_) => { schema = document_; })
    .catch(() => { schema = null; });

  function resolve(node) {
    let seen = 0;
    while (node && node.$ref && seen++ < 20) node = (schema.$defs || {})[node.$ref.split("/").pop()];
    if (node && node.anyOf) node = resolve(node.anyOf.find((n) => n.type !== "null"));
    return node || null;
  }

  function variant(node, kind) {
    if (!node || !node.oneOf) return node;
    const mapping = (node.discriminator || {}).mapping || {};
    if (kind && mapping[kind]) return resolve({ $ref: mapping[kind] });
    const merged = { type: "object", properties: {} }; // kind not written yet: every step key
    node.oneOf.forEach((option) => Object.assign(merged.properties, (resolve(option) || {}).properties || {}));
    merged.kinds = Object.keys(mapping);
    return merged;
  }

  function nodeAt(path, kind) {
    let node = resolve(schema);
    for (const part of path) {
      if (!node) return null;
      node = part === "[]" ? variant(resolve(node.items), kind) : resolve((node.properties || {})[part]);
    }
    return node;
  }

  // The keys above the given column: the mapping (or list item) a line at that column belongs to.
  function blockPath(cm, lineNo, column) {
    const path = [];
    let want = column;
    let afterItem = false;
    for (let n = lineNo - 1; n >= 0 && (want > 0 || afterItem); n--) {
      const text = cm.getLine(n);
      if (!text.trim() || /^\s*#/.test(text)) continue;
      const m = text.match(/^(\s*)((?:-\s+)*)/);
      const indent = m[1].length;
      const keyColumn = m[0].length;
      if (m[2] && keyColumn === want && indent < want) { path.unshift("[]"); want = indent; afterItem = true; continue; }
      if (m[2] && indent === want && afterItem) continue; // an earlier item of the same list
      const key = (text.slice(keyColumn).match(/^([A-Za-z_][\w-]*)\s*:/) || [])[1];
      const parent = keyColumn < want || (afterItem && !m[2] && keyColumn === want && key);
      if (parent && key) {
        path.unshift(key);
        afterItem = false;
        if (m[2]) { path.unshift("[]"); want = indent; afterItem = true; } else want = keyColumn;
      } else if (parent) {
        want = keyColumn;
      }
    }
    return path;
  }

  // The `kind:` of the step the cursor is in (its item starts at the nearest line with a dash).
  function stepKind(cm, lineNo, before) {
    const own = before.match(/\bkind:\s*([a-z]+)/);
    if (own) return own[1];
    let start = lineNo;
    while (start > 0 && !/^\s*-\s/.test(cm.getLine(start))) start--;
    const dash = cm.getLine(start).search(/-/);
    for (let n = start; n < cm.lineCount(); n++) {
      const text = cm.getLine(n);
      if (n > start && text.trim() && (text.search(/\S/) <= dash)) break;
      const found = text.match(/\bkind:\s*([a-z]+)/);
      if (found) return found[1];
    }
    return null;
  }

  function stepIds(cm) {
    const ids = [];
    cm.eachLine((handle) => {
      const found = handle.text.match(/(?:^\s*-\s*\{?\s*|^\s*)id:\s*([a-z][a-z0-9_]*)/);
      if (found) ids.push(found[1]);
    });
    return ids;
  }

  function schemaHint(cm) {
    if (!schema) return null;
    const cursor = cm.getCursor();
    const line = cm.getLine(cursor.line);
    const before = line.slice(0, cursor.ch);
    if (/^\s*#/.test(before) || /#/.test(before.replace(/'[^']*'|"[^"]*"/g, ""))) return null;
    const head = before.match(/^(\s*)((?:-\s+)*)/);
    const path = blockPath(cm, cursor.line, head[1].length);
    for (let i = 0; i < (head[2].match(/-/g) || []).length; i++) path.push("[]");
    // flow collections opened on this line: {…} and […]
    const rest = before.slice(head[0].length);
    const stack = [];
    let lastKey = null;
    const tokens = rest.match(/'[^']*'|"[^"]*"|[A-Za-z_][\w-]*\s*:|[{}\[\],]|[^{}\[\],'"]+/g) || [];
    tokens.forEach((token) => {
      if (/:$/.test(token)) lastKey = token.replace(/\s*:$/, "");
      else if (token === "{" || token === "[") { stack.push({ open: token, key: lastKey }); lastKey = null; }
      else if (token === "}" || token === "]") { stack.pop(); lastKey = null; }
      else if (token === ",") lastKey = null;
    });
    stack.forEach((frame) => {
      if (frame.key) path.push(frame.key);
      if (frame.open === "[") path.push("[]");
    });
    const inSteps = path[0] === "steps" && path[1] === "[]";
    const kind = inSteps ? stepKind(cm, cursor.line, before) : null;
    const top = stack[stack.length - 1];
    const word = (before.match(/[\w-]*$/) || [""])[0];
    const from = Pos(cursor.line, cursor.ch - word.length);
    let items = [];

    const value = before.match(/([A-Za-z_][\w-]*):\s+([\w-]*)$/);
    const listItem = top && top.open === "[" && /[\[,]\s*[\w-]*$/.test(before);
    if (listItem) {
      items = values(path.slice(0, -2), top.key, kind, true);
    } else if (value) {
      items = values(path, value[1], kind, false);
    } else if (/(^\s*(?:-\s+)*|[{,]\s*)[\w]*$/.test(before)) {
      const node = nodeAt(path, kind);
      if (!node || !node.properties) return null;
      items = Object.keys(node.properties).map((key) => ({
        text: key + ": ",
        displayText: key,
        hint: describe(node.properties[key]),
        render: renderItem,
      }));
    }
    items = items.filter((item) => (item.displayText || item.text).startsWith(word));
    if (!items.length) return null;
    return { list: items, from, to: Pos(cursor.line, cursor.ch) };

    function values(parentPath, key, stepKind_, inList) {
      const parent = nodeAt(parentPath, stepKind_);
      if (key === "kind" && inSteps) return (parent && parent.kinds ? parent.kinds : Object.keys(
        ((resolve(nodeAt(["steps"]).items) || {}).discriminator || {}).mapping || {})).map(plain);
      if (["department", "issuer", "participants"].includes(key)) return departments.map(plain);
      if (key === "after") return stepIds(cm).map(plain);
      let prop = parent && parent.properties ? resolve(parent.properties[key]) : null;
      if (prop && inList) prop = resolve(prop.items);
      if (!prop) return [];
      if (prop.enum) return prop.enum.map(plain);
      if (prop.type === "boolean") return ["true", "false"].map(plain);
      return [];
    }
  }

  function plain(text) { return { text: String(text), displayText: String(text) }; }

  function describe(node) {
    const resolved = resolve(node) || {};
    const text = (node && node.description) || resolved.description || "";
    return text.length > 70 ? text.slice(0, 68) + "…" : text;
  }

  function renderItem(element, _data, item) {
    const key = document.createElement("span");
    key.className = "hint-key";
    key.textContent = item.displayText;
    element.appendChild(key);
    if (item.hint) {
      const note = document.createElement("span");
      note.className = "hint-note";
      note.textContent = item.hint;
      element.appendChild(note);
    }
  }
})();
