import BlockIR

/// The C source of a stand-alone harness for a program's entry point.
///
/// `harness DIR [REPS]` reads every input from `DIR/NAME.npy` (little-endian, C order, the
/// tensor's dtype as `ElementType.numpyDescr` gives it: `<f4`, `<f2`, `<u2` for bf16, `<i4`, `|b1`),
/// calls the entry once and writes every output to `DIR/NAME.npy`. With `REPS > 0` it then
/// warms up and times `REPS` further calls, printing `median_ms M min_ms N reps R`. `NAME` is
/// the tensor's own name; the harness's arrays and the entry carry `CNames`'s prefixes
/// (`blk_t_NAME`, `blk_u_PROGRAM`), so no name can clash with `main`'s locals or with libc.
public enum CHarness {
    /// The harness source for a program; it includes the program's header by name.
    public static func source(for program: Program, dialect: Dialect = .c, headerName: String? = nil) -> String {
        let names = CNames(program: program, dialect: dialect)
        var w = CodeWriter()
        w.line("/* harness for \(names.entry): reads inputs from DIR/NAME.npy, writes outputs there. */")
        w.line("#include <omp.h>")
        w.line("#include <stdio.h>")
        w.line("#include <stdlib.h>")
        w.line("#include <string.h>")
        w.line("#include \"\(headerName ?? names.stem).\(dialect.headerExtension)\"")
        w.lines(support)
        w.block("int main(int argc, char **argv)") { w in
            w.line("if (argc < 2) { fprintf(stderr, \"usage: %s DIR [REPS]\\n\", argv[0]); return 2; }")
            w.line("const char *dir = argv[1];")
            w.line("int reps = argc > 2 ? atoi(argv[2]) : 0;")
            for t in program.inputs {
                let p = names.parameter(t)
                let type = program[t].elementType
                let abi = dialect.abiType(type)
                let file = CNames.stringLiteral(program[t].name)
                w.line(
                    "\(abi) *\(p) = (\(abi) *)npy_read(dir, \"\(file)\", \(program[t].elementCount)L, "
                        + "\"\(type.numpyDescr)\", \(type.byteSize));")
                w.line("if (!\(p)) return 1;")
                if let check = offsetsCheck(program, t, p) { w.line(check) }
            }
            for t in program.outputs {
                let p = names.parameter(t)
                let abi = dialect.abiType(program[t].elementType)
                w.line("\(abi) *\(p) = (\(abi) *)calloc(\(program[t].elementCount)L, sizeof(\(abi)));")
            }
            let args = (program.inputs + program.outputs).map { names.parameter($0) }.joined(separator: ", ")
            w.line("\(names.entry)(\(args));")
            for t in program.outputs {
                let shape = program[t].shape.map { "\($0)L" }.joined(separator: ", ")
                w.line("{ long shape[] = {\(shape.isEmpty ? "0" : shape)};")
                w.line(
                    "  if (npy_write(dir, \"\(CNames.stringLiteral(program[t].name))\", \(names.parameter(t)), shape, "
                        + "\(program[t].shape.count), \"\(program[t].elementType.numpyDescr)\", "
                        + "\(program[t].elementType.byteSize))) return 1; }")
            }
            w.block("if (reps > 0)") { w in
                w.line("\(names.entry)(\(args)); /* warm-up */")
                w.line("double *times = (double *)malloc(sizeof(double) * (size_t)reps);")
                w.block("for (int r = 0; r < reps; r++)") { w in
                    w.line("double t0 = omp_get_wtime();")
                    w.line("\(names.entry)(\(args));")
                    w.line("times[r] = (omp_get_wtime() - t0) * 1e3;")
                    w.line(
                        "if (reps >= 10 && (r + 1) % (reps / 5) == 0) "
                            + "{ fprintf(stderr, \"  %d/%d runs\\n\", r + 1, reps); }")
                }
                w.line("qsort(times, (size_t)reps, sizeof(double), cmp_double);")
                w.line(
                    "printf(\"median_ms %.6f min_ms %.6f reps %d threads %d\\n\", times[reps / 2], times[0], reps, "
                        + "omp_get_max_threads());")
                w.line("free(times);")
            }
            for t in program.inputs + program.outputs { w.line("free(\(names.parameter(t)));") }
            w.line("return 0;")
        }
        return w.text
    }

    /// The check of an input that holds segment offsets (`GlobalTensor.offsetsInto`), as
    /// `SegmentOffsets.problem` words it; nil for other inputs.
    static func offsetsCheck(_ program: Program, _ t: TensorID, _ pointer: String) -> String? {
        guard let n = program[t].offsetsInto else { return nil }
        let name = CNames.stringLiteral(program[t].name)
        let m = program[t].segmentMaxLength ?? 0
        return "if (blk_check_offsets(\(pointer), \(program[t].elementCount)L, \(n)L, \(m)L, \"\(name)\")) return 1;"
    }

    /// `.npy` reading and writing (little-endian, C order, format 1.0, any element size), a
    /// comparator, and the check of segment offsets.
    static let support = #"""
        static int blk_check_offsets(const int32_t *o, long count, long length, long max_len, const char *name) {
            for (long k = 0; k < count; k++) {
                if (o[k] < 0 || o[k] > length) {
                    fprintf(stderr, "error: input '%s' holds segment offsets into %ld positions, but element %ld is %d, "
                            "outside 0 ... %ld; give non-decreasing offsets that end at most at %ld\n",
                            name, length, k, (int)o[k], length, length);
                    return 1;
                }
                if (k > 0 && o[k] < o[k - 1]) {
                    fprintf(stderr, "error: input '%s' holds segment offsets, but element %ld (%d) is below element "
                            "%ld (%d); give non-decreasing offsets\n", name, k, (int)o[k], k - 1, (int)o[k - 1]);
                    return 1;
                }
            }
            /* max_len > 0: every segment (the first from 0, the last to length) holds at most max_len. */
            long segments = count > 1 ? count - 1 : 1;
            for (long s = 0; max_len > 0 && s < segments; s++) {
                long start = s == 0 ? 0 : (long)o[s], end = s == segments - 1 ? length : (long)o[s + 1];
                if (end - start > max_len) {
                    fprintf(stderr, "error: input '%s' holds segments of at most %ld positions (max_len), but segment "
                            "%ld (positions %ld ..< %ld) holds %ld; give offsets whose segments hold at most %ld "
                            "positions, or compile with a larger max_len\n", name, max_len, s, start, end, end - start,
                            max_len);
                    return 1;
                }
            }
            return 0;
        }
        static int cmp_double(const void *a, const void *b) {
            double x = *(const double *)a, y = *(const double *)b;
            return x < y ? -1 : x > y;
        }
        static void *npy_read(const char *dir, const char *name, long count, const char *descr, int size) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.npy", dir, name);
            FILE *f = fopen(path, "rb");
            if (!f) { fprintf(stderr, "error: cannot open %s\n", path); return NULL; }
            unsigned char pre[10];
            if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
                fprintf(stderr, "error: %s is not a .npy file\n", path); fclose(f); return NULL;
            }
            long hlen;
            if (pre[6] == 1) { hlen = pre[8] | (pre[9] << 8); }
            else {
                unsigned char more[2];
                if (fread(more, 1, 2, f) != 2) { fclose(f); return NULL; }
                hlen = (long)pre[8] | ((long)pre[9] << 8) | ((long)more[0] << 16) | ((long)more[1] << 24);
            }
            char *header = (char *)calloc((size_t)hlen + 1, 1);
            if (fread(header, 1, (size_t)hlen, f) != (size_t)hlen) { fclose(f); free(header); return NULL; }
            if (!strstr(header, descr) || strstr(header, "True")) {
                fprintf(stderr, "error: %s must hold dtype '%s' in C order\n", path, descr);
                fclose(f); free(header); return NULL;
            }
            free(header);
            void *data = malloc((size_t)size * (size_t)(count > 0 ? count : 1));
            if ((long)fread(data, (size_t)size, (size_t)count, f) != count) {
                fprintf(stderr, "error: %s holds fewer than %ld elements\n", path, count);
                fclose(f); free(data); return NULL;
            }
            fclose(f);
            return data;
        }
        static int npy_write(const char *dir, const char *name, const void *data, const long *shape, int rank,
                             const char *descr, int size) {
            char path[4096], header[512], dims[400] = "";
            snprintf(path, sizeof path, "%s/%s.npy", dir, name);
            long count = 1;
            for (int k = 0; k < rank; k++) {
                char d[32];
                snprintf(d, sizeof d, rank == 1 ? "%ld," : (k ? " %ld" : "%ld"), shape[k]);
                if (rank > 1 && k < rank - 1) strcat(d, ",");
                strcat(dims, d);
                count *= shape[k];
            }
            int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr,
                             dims);
            int total = 10 + n + 1, pad = (64 - total % 64) % 64;
            FILE *f = fopen(path, "wb");
            if (!f) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
            unsigned short hlen = (unsigned short)(n + pad + 1);
            fwrite("\x93NUMPY\x01\x00", 1, 8, f);
            fputc(hlen & 0xFF, f);
            fputc(hlen >> 8, f);
            fwrite(header, 1, (size_t)n, f);
            for (int k = 0; k < pad; k++) fputc(' ', f);
            fputc('\n', f);
            fwrite(data, (size_t)size, (size_t)count, f);
            fclose(f);
            return 0;
        }
        """#
}
