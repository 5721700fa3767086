/* resp.c: the Redis serialization protocol, version 2 (RESP2), as redis-cli and
 * redis-benchmark speak it: requests are arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
 * or inline lines ("PING\r\n"); replies are simple strings, errors, integers, bulk strings and
 * arrays. The parser never trusts a length it reads: garbage gets an error, never a crash. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvd.h"

enum {
    max_arguments = 1024 * 1024,
    max_bulk_length = 64 * 1024 * 1024,
    max_inline_length = 64 * 1024,
};

static void request_add(struct request *request, const char *bytes, size_t length)
{
    if (request->argc == request->capacity) {
        int capacity = request->capacity ? request->capacity * 2 : 16;
        request->argv = realloc(request->argv, (size_t)capacity * sizeof *request->argv);
        request->lengths = realloc(request->lengths, (size_t)capacity * sizeof *request->lengths);
        if (!request->argv || !request->lengths)
            abort();   /* out of memory: nothing sensible to do for one request */
        request->capacity = capacity;
    }
    request->argv[request->argc] = bytes;
    request->lengths[request->argc] = length;
    request->argc++;
}

/* Reads "<digits>\r\n" at `*cursor`: the number, or -2 when incomplete, -1 when malformed. */
static long long read_length(const char **cursor, const char *end)
{
    const char *line_end = memchr(*cursor, '\r', (size_t)(end - *cursor));
    if (!line_end || line_end + 1 >= end)
        return end - *cursor > 20 ? -1 : -2;
    if (line_end[1] != '\n' || line_end == *cursor)
        return -1;
    long long value = 0;
    for (const char *p = *cursor; p < line_end; p++) {
        if (*p < '0' || *p > '9' || value > max_bulk_length)
            return -1;   /* a sign, a letter, or a length no request may have */
        value = value * 10 + (*p - '0');
    }
    *cursor = line_end + 2;
    return value;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A quoted inline argument at `*p` (its opening quote), as Redis reads one: "..." with the
 * escapes \xHH \n \r \t \b \a and \c for any other c, or '...' with \' only. Decoded in place
 * (never longer than written), from `*p` on; its length, or -1 when the quotes do not close, or
 * close against the next character instead of a space. */
static long decode_quoted(char **p, char *end)
{
    char quote = **p, *in = *p + 1, *out = *p;
    for (; in < end && *in != quote; in++) {
        if (*in == '\\' && in + 1 < end) {
            char next = in[1];
            if (quote == '\'') {
                if (next == '\'')
                    in++;
                *out++ = *in;
                continue;
            }
            int high, low;
            if (next == 'x' && in + 3 < end && (high = hex_digit(in[2])) >= 0 && (low = hex_digit(in[3])) >= 0) {
                *out++ = (char)(high * 16 + low);
                in += 3;
                continue;
            }
            *out++ = next == 'n' ? '\n' : next == 'r' ? '\r' : next == 't' ? '\t' : next == 'b' ? '\b' : next == 'a' ? '\a' : next;
            in++;
            continue;
        }
        *out++ = *in;
    }
    if (in >= end || (in + 1 < end && in[1] != ' ' && in[1] != '\t'))
        return -1;
    long length = (long)(out - *p);
    *p = in + 1;
    return length;
}

static enum parse_result parse_inline(char *data, size_t length, struct request *request, size_t *consumed,
                                      const char **error)
{
    char *newline = memchr(data, '\n', length);
    if (!newline) {
        if (length > max_inline_length) {
            *error = "Protocol error: too big inline request";
            return parse_error;
        }
        return parse_incomplete;
    }
    char *end = newline > data && newline[-1] == '\r' ? newline - 1 : newline;
    for (char *p = data; p < end;) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        char *word = p;
        if (p < end && (*p == '"' || *p == '\'')) {
            long decoded = decode_quoted(&p, end);
            if (decoded < 0) {
                *error = "Protocol error: unbalanced quotes in request";
                return parse_error;
            }
            request_add(request, word, (size_t)decoded);
            continue;
        }
        while (p < end && *p != ' ' && *p != '\t')
            p++;
        if (p > word)
            request_add(request, word, (size_t)(p - word));
    }
    *consumed = (size_t)(newline + 1 - data);
    return parse_done;
}

enum parse_result resp_parse(char *data, size_t length, struct request *request, size_t *consumed,
                             const char **error)
{
    request->argc = 0;
    if (length == 0)
        return parse_incomplete;
    if (data[0] != '*')
        return parse_inline(data, length, request, consumed, error);
    const char *cursor = data + 1;
    const char *end = data + length;
    if (cursor < end && *cursor == '-') {   /* "*-1": a null array, which Redis skips: nothing to run */
        const char *digits = cursor + 1;
        long long magnitude = read_length(&digits, end);
        if (magnitude == -2)
            return parse_incomplete;
        if (magnitude >= 0) {
            *consumed = (size_t)(digits - data);
            return parse_done;
        }
    }
    long long count = read_length(&cursor, end);
    if (count == -2)
        return parse_incomplete;
    if (count < 0 || count > max_arguments) {
        *error = "Protocol error: invalid multibulk length";
        return parse_error;
    }
    for (long long i = 0; i < count; i++) {
        if (cursor >= end)
            return parse_incomplete;
        if (*cursor != '$') {
            *error = "Protocol error: expected '$'";
            return parse_error;
        }
        cursor++;
        long long bulk = read_length(&cursor, end);
        if (bulk == -2)
            return parse_incomplete;
        if (bulk < 0 || bulk > max_bulk_length) {
            *error = "Protocol error: invalid bulk length";
            return parse_error;
        }
        if (end - cursor < bulk + 2)
            return parse_incomplete;
        if (cursor[bulk] != '\r' || cursor[bulk + 1] != '\n') {
            *error = "Protocol error: bulk string not terminated by CRLF";
            return parse_error;
        }
        request_add(request, cursor, (size_t)bulk);
        cursor += bulk + 2;
    }
    *consumed = (size_t)(cursor - data);
    return parse_done;
}

void buffer_append(struct buffer *buffer, const void *bytes, size_t length)
{
    if (buffer->length + length > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 256;
        while (capacity < buffer->length + length)
            capacity *= 2;
        char *grown = realloc(buffer->data, capacity);
        if (!grown)
            abort();
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->length, bytes, length);
    buffer->length += length;
}

void buffer_free(struct buffer *buffer)
{
    free(buffer->data);
    *buffer = (struct buffer){0};
}

static void append_line(struct buffer *out, char type, const char *text, size_t length)
{
    buffer_append(out, &type, 1);
    buffer_append(out, text, length);
    buffer_append(out, "\r\n", 2);
}

void reply_simple(struct buffer *out, const char *text) { append_line(out, '+', text, strlen(text)); }

void reply_error(struct buffer *out, const char *format, ...)
{
    char text[512];
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(text, sizeof text, format, arguments);
    va_end(arguments);
    for (char *p = text; *p; p++)   /* an error is one line, whatever the client sent */
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    append_line(out, '-', text, length < 0 ? 0 : (size_t)length < sizeof text ? (size_t)length : sizeof text - 1);
}

void reply_integer(struct buffer *out, long long value)
{
    char text[32];
    int length = snprintf(text, sizeof text, "%lld", value);
    append_line(out, ':', text, (size_t)length);
}

void reply_bulk(struct buffer *out, const char *bytes, size_t length)
{
    char header[32];
    int header_length = snprintf(header, sizeof header, "$%zu\r\n", length);
    buffer_append(out, header, (size_t)header_length);
    buffer_append(out, bytes, length);
    buffer_append(out, "\r\n", 2);
}

void reply_null(struct buffer *out) { buffer_append(out, "$-1\r\n", 5); }

void reply_array(struct buffer *out, long long count)
{
    char text[32];
    int length = snprintf(text, sizeof text, "%lld", count);
    append_line(out, '*', text, (size_t)length);
}
