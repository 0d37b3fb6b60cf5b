import TurndownService from 'turndown';

const NAV_CLASS = /(^|[\s_-])(nav|navbar|menu|breadcrumbs?|sidebar|footer|header|cookie|banner|toc|skip)([\s_-]|$)/i;

type TNode = TurndownService.Node & {
  rows?: ArrayLike<unknown>;
  getAttribute?: (n: string) => string | null;
  className?: string;
  id?: string;
};

function cellText(cell: Element): string {
  return (cell.textContent ?? '').replace(/\s+/g, ' ').trim().replace(/\|/g, '\\|');
}

/** Convert an HTML table element to a GitHub-flavoured Markdown table. */
export function tableToMarkdown(table: Element): string {
  const rows: string[][] = [];
  let headerRows = 0;
  const trs = Array.from(table.querySelectorAll('tr'));
  for (const tr of trs) {
    const cells = Array.from(tr.children).filter((c) => /^(TD|TH)$/i.test(c.nodeName));
    if (!cells.length) continue;
    const row: string[] = [];
    for (const c of cells) {
      const span = Number(c.getAttribute('colspan') ?? '1') || 1;
      row.push(cellText(c));
      for (let i = 1; i < span; i++) row.push('');
    }
    if (rows.length === headerRows && cells.every((c) => /^TH$/i.test(c.nodeName))) headerRows++;
    rows.push(row);
  }
  if (!rows.length) return '';
  const width = Math.max(...rows.map((r) => r.length));
  const pad = (r: string[]) => [...r, ...Array(width - r.length).fill('')];
  const head = pad(headerRows ? (rows[0] as string[]) : Array(width).fill(''));
  const body = (headerRows ? rows.slice(1) : rows).map(pad);
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

export function htmlToMarkdown(html: string): { title: string; markdown: string } {
  const td = new TurndownService({ headingStyle: 'atx', codeBlockStyle: 'fenced', bulletListMarker: '-' });
  td.remove(['script', 'style', 'nav', 'header', 'footer', 'aside', 'noscript', 'form', 'iframe', 'button']);
  td.addRule('navByClass', {
    filter: (node) => {
      const n = node as TNode;
      const role = n.getAttribute?.('role') ?? '';
      const cls = `${n.className ?? ''} ${n.id ?? ''}`;
      return /^(navigation|banner|contentinfo)$/i.test(role) || (node.nodeName !== 'BODY' && NAV_CLASS.test(cls));
    },
    replacement: () => '',
  });
  td.addRule('table', {
    filter: 'table',
    replacement: (_content, node) => `\n\n${tableToMarkdown(node as unknown as Element)}\n\n`,
  });
  const titleMatch = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(html);
  const body = /<body[^>]*>([\s\S]*)<\/body>/i.exec(html)?.[1] ?? html;
  const markdown = td.turndown(body);
  const h1 = /^#\s+(.+)$/m.exec(markdown)?.[1];
  return { title: (titleMatch?.[1] ?? h1 ?? '').replace(/\s+/g, ' ').trim(), markdown };
}
