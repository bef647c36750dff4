/*
 * fr_data.h: data files a row at a time, JSON Lines and CSV, each row
 * turned into a record of a schema and checked against it.  Shared by
 * libflowrt's read_jsonl and read_csv (fr_io.c) and by `flowc check --data`,
 * so a data check in CI says exactly what a run would.
 *
 * A reader streams: it holds one row (and, for CSV, the header) at a time,
 * so a file of any size costs one row of memory besides the records the
 * caller keeps.  Each call of fr_reader_next gives one row: a good one as a
 * record (a new reference, keyed by wire names, normalized), or a bad one
 * with every problem found in it (each with its field, line and column) and
 * its text exactly as it is in the file, for a rejects file.  A problem that
 * spoils the whole file (a CSV header without a required column, a file
 * that cannot be read) is FR_ROW_FATAL, before any row.
 *
 * Ownership: the reader owns what its accessors return; it stays valid until
 * the next fr_reader_next or fr_reader_close.
 */
#ifndef FR_DATA_H
#define FR_DATA_H

#include "flowrt.h"

#include <stdio.h>

typedef enum fr_format { FR_FMT_JSONL, FR_FMT_CSV } fr_format;

/* One thing wrong with a row (or, FR_ROW_FATAL, with the file). */
typedef struct fr_problem {
    const char *key;               /* the field's wire name or the column, or NULL */
    const char *msg;               /* what is wrong: "expected float, got 'n/a'" (JSONL:
                                      "score: expected float, got string", path first) */
    long line;                     /* its line in the file, from 1 */
    long col;                      /* its byte column from 1 (a CSV cell's start), 0 unknown */
} fr_problem;

typedef enum fr_row {
    FR_ROW_GOOD,                   /* *row is the record */
    FR_ROW_BAD,                    /* the row has problems; the read goes on */
    FR_ROW_END,                    /* no more rows */
    FR_ROW_FATAL,                  /* the file cannot be read on: problems, or fr_reader_error */
} fr_row;

typedef struct fr_reader fr_reader;

/* Opens path ("-" is stdin) to read records of elem (a record type) in fmt;
 * delim is CSV's cell separator (0: ',').  NULL with err set when the file
 * cannot be opened or memory runs out. */
fr_reader *fr_reader_open(const char *path, fr_format fmt, const fr_type *elem, char delim,
                          fr_buf *err);
/* Rows are checked only, never built: a good row comes as FR_ROW_GOOD with
 * *row NULL (flowc check --data, where nothing is kept). */
void fr_reader_check_only(fr_reader *r);
/* The next row. */
fr_row fr_reader_next(fr_reader *r, json_t **row);
/* The last row's (or FR_ROW_FATAL's) problems. */
const fr_problem *fr_reader_problems(const fr_reader *r, int *n);
/* Whether memory ran out (FR_ROW_FATAL). */
bool fr_reader_oom(const fr_reader *r);
/* Why FR_ROW_FATAL came without problems ("cannot read 'x': ...", "out of memory"). */
const char *fr_reader_error(const fr_reader *r);
/* The line the last row starts on. */
long fr_reader_line(const fr_reader *r);
/* The last row as it is in the file, without its line break. */
const char *fr_reader_raw(const fr_reader *r, size_t *n);
/* CSV: the header row as it is in the file, without its line break. */
const char *fr_reader_header(const fr_reader *r, size_t *n);
/* The file's line break, as its header row ends ("\r\n" or "\n"). */
const char *fr_reader_newline(const fr_reader *r);
/* Data rows read so far, good and bad. */
long fr_reader_rows(const fr_reader *r);
void fr_reader_close(fr_reader *r);

/* The last row's problems as one line: "column 'Email': empty, but the field
 * is required; column 'Score': ..." (JSONL: "email: expected string, got
 * number; ..."). */
void fr_reader_describe(const fr_reader *r, fr_buf *out);

/* Writes a list of records as CSV to f: the header (the fields'
 * wire names; for a schema that keeps other keys, every key of the records
 * in the order they first come) and a row per record, cells quoted as RFC
 * 4180 says (when they hold the separator, a quote, a line break, or spaces
 * at an end), CRLF line breaks.  A list field is one cell, its items joined
 * by ';'.  delim 0 is ','.  False with err set when a value cannot be
 * written (an item holding ';'), f fails or memory runs out. */
bool fr_csv_write(FILE *f, json_t *list, const fr_type *elem, char delim, fr_buf *err);

/* The same a row at a time, for a file written as its rows come
 * (fr_stream_file).  fr_csv_schema: elem's schema, NULL with err set when
 * elem is not a record.  The columns are a JSON object whose keys, in
 * order, are the header: fr_csv_note_keys adds a kept schema's record's
 * keys (in the order they first come), fr_csv_add_fields then the fields
 * no record had.  fr_csv_head and fr_csv_row set line to the header line
 * and to record number row's line (text is scratch); false with err set
 * (fr_csv_head: out of memory only). */
const fr_schema *fr_csv_schema(const fr_type *elem, fr_buf *err);
bool fr_csv_note_keys(json_t *cols, json_t *rec);
bool fr_csv_add_fields(json_t *cols, const fr_schema *sc);
bool fr_csv_head(fr_buf *line, json_t *cols, char delim);
bool fr_csv_row(fr_buf *line, fr_buf *text, json_t *rec, json_t *cols, char delim, size_t row,
                fr_buf *err);

#endif
