// A small PDF writer: lines of text on A4 pages in Helvetica (WinAnsi), for the papers a doctor prints in the
// cabin. It runs in the professional's browser: the summary leaves it only over the call's documents channel.

const PAGE = { width: 595.28, height: 841.89, margin: 56 };
// Characters outside Latin-1 that WinAnsiEncoding has (typographic quotes, dashes, the euro...).
const WIN_ANSI = new Map([
  [0x20ac, 0x80], [0x2026, 0x85], [0x2018, 0x91], [0x2019, 0x92], [0x201c, 0x93], [0x201d, 0x94],
  [0x2022, 0x95], [0x2013, 0x96], [0x2014, 0x97], [0x0152, 0x8c], [0x0153, 0x9c], [0x202f, 0x20], [0x2009, 0x20],
]);
// Helvetica's mean advance, as a fraction of the size: enough to wrap lines (an approximation, on the safe side).
const ADVANCE = { regular: 0.53, bold: 0.58 };

function winAnsi(text) {
  const bytes = [];
  for (const char of text.normalize("NFC")) {
    const code = char.codePointAt(0);
    let byte = WIN_ANSI.get(code) ?? (code >= 0x20 && code <= 0xff && !(code >= 0x7f && code < 0xa0) ? code : 0x3f);
    if (byte === 0xa0) byte = 0x20;
    if (byte === 0x28 || byte === 0x29 || byte === 0x5c) bytes.push(0x5c);
    bytes.push(byte);
  }
  return bytes;
}

function wrap(text, size, weight) {
  const width = PAGE.width - 2 * PAGE.margin;
  const perLine = Math.max(10, Math.floor(width / (size * ADVANCE[weight])));
  const lines = [];
  for (const paragraph of String(text).split(/\r?\n/)) {
    let line = "";
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      for (let piece = word; piece.length; piece = piece.slice(perLine)) {
        const part = piece.slice(0, perLine);
        if (line && line.length + 1 + part.length > perLine) {
          lines.push(line);
          line = part;
        } else {
          line = line ? `${line} ${part}` : part;
        }
      }
    }
    lines.push(line);
  }
  return lines;
}

const ascii = (text) => Array.from(text, (c) => c.charCodeAt(0));

// blocks: [{ text, size = 11, bold = false, gap = 0 }] (gap: points of space before the block). Returns a Blob.
export function textPdf(blocks) {
  const pages = [[]];
  let y = PAGE.height - PAGE.margin;
  for (const block of blocks) {
    const size = block.size ?? 11;
    const weight = block.bold ? "bold" : "regular";
    y -= block.gap ?? 0;
    for (const line of wrap(block.text, size, weight)) {
      const leading = size * 1.35;
      if (y - leading < PAGE.margin) {
        pages.push([]);
        y = PAGE.height - PAGE.margin;
      }
      y -= leading;
      if (line) pages[pages.length - 1].push({ line, size, font: block.bold ? "F2" : "F1", y });
    }
  }
  const objects = []; // byte arrays, object n at index n - 1
  const add = (bytes) => objects.push(bytes) && objects.length;
  add(ascii("<< /Type /Catalog /Pages 2 0 R >>"));
  add([]); // the page tree, once the pages are known
  add(ascii("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"));
  add(ascii("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"));
  const kids = [];
  for (const lines of pages) {
    const content = [];
    for (const { line, size, font, y: at } of lines) {
      content.push(...ascii(`BT /${font} ${size} Tf 1 0 0 1 ${PAGE.margin} ${at.toFixed(2)} Tm (`), ...winAnsi(line), ...ascii(") Tj ET\n"));
    }
    const stream = add([...ascii(`<< /Length ${content.length} >>\nstream\n`), ...content, ...ascii("\nendstream")]);
    kids.push(
      add(ascii(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${PAGE.width} ${PAGE.height}] ` +
                `/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents ${stream} 0 R >>`)),
    );
  }
  objects[1] = ascii(`<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(" ")}] /Count ${kids.length} >>`);
  const out = [...ascii("%PDF-1.4\n%"), 0xe2, 0xe3, 0xcf, 0xd3, 0x0a];
  const offsets = [];
  objects.forEach((body, index) => {
    offsets.push(out.length);
    out.push(...ascii(`${index + 1} 0 obj\n`), ...body, ...ascii("\nendobj\n"));
  });
  const xref = out.length;
  out.push(...ascii(`xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`));
  for (const offset of offsets) out.push(...ascii(`${String(offset).padStart(10, "0")} 00000 n \n`));
  out.push(...ascii(`trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`));
  return new Blob([new Uint8Array(out)], { type: "application/pdf" });
}
