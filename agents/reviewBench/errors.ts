import { UserError } from "../../bus/errors.js";

/** A benchmark input (ratings TSV, review CSV, paper text) is missing or malformed. */
export class BenchDataError extends UserError {}

/** A CSV file breaks RFC 4180 (an unterminated quote, text after a closing quote, a short row). */
export class CsvFormatError extends BenchDataError {}
