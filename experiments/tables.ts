/**
 * Result tables as JSON (pandas' split form, which MLflow's load_table reads) and as an Arrow IPC file (readable by pyarrow's
 * `pa.ipc.open_file`, pandas via `read_feather`). Numbers become float64 columns, booleans bool,
 * everything else utf8; a missing cell is null.
 */
import {
  Bool,
  type DataType,
  Float64,
  makeVector,
  Table,
  tableToIPC,
  Utf8,
  type Vector,
  vectorFromArray,
} from 'apache-arrow';

export type Cell = number | string | boolean | null | undefined;
export type Row = Record<string, Cell>;

/** Column names in first-seen order across all rows. */
export function tableColumns(rows: Row[]): string[] {
  const seen = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  return [...seen];
}

/**
 * The rows as pandas' split JSON (`{"columns": [...], "data": [[...], ...]}`), what
 * `DataFrame.to_json(orient="split", index=False)` writes and MlflowClient.log_table/load_table
 * use; a missing cell and a non-finite number are null (pandas writes NaN as null too).
 */
export function tableToSplitJson(rows: Row[]): string {
  const columns = tableColumns(rows);
  const cell = (v: Cell) => (v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? null : v);
  const data = rows.map((r) => columns.map((c) => cell(r[c])));
  return `${JSON.stringify({ columns, data })}\n`;
}

/** The rows as an Arrow IPC file (the `file` format, with footer). */
export function tableToArrow(rows: Row[]): Uint8Array {
  const columns: Record<string, Vector<DataType>> = {};
  for (const name of tableColumns(rows)) {
    const values = rows.map((r) => r[name]);
    const present = values.filter((v) => v !== null && v !== undefined);
    if (present.length > 0 && present.every((v) => typeof v === 'number')) {
      columns[name] = vectorFromArray(
        values.map((v) => (v === undefined ? null : v)),
        new Float64(),
      );
    } else if (present.length > 0 && present.every((v) => typeof v === 'boolean')) {
      columns[name] = vectorFromArray(
        values.map((v) => (v === undefined ? null : v)),
        new Bool(),
      );
    } else {
      columns[name] = vectorFromArray(
        values.map((v) => (v === undefined || v === null ? null : String(v))),
        new Utf8(),
      );
    }
  }
  const table = rows.length ? new Table(columns) : new Table({ empty: makeVector(new Float64Array(0)) });
  return tableToIPC(table, 'file');
}
