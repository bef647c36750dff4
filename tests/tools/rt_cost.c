/*
 * rt_cost.c: what a call costs, class by class, without a network.
 *
 *   rt_cost selftest       the checks below; ends with "N failed"
 *
 * fr_price prices each billed token class at its own price (input, output,
 * cache write 5 minutes and 1 hour, cache read), a cache price the model does
 * not declare as input; fr_charge_of turns one attempt's response into its
 * charge (an answer without usage is charged its hold, a request that got
 * no answer nothing); and the two wire formats' parsers read usage the way
 * each provider reports it: Anthropic's input_tokens without the cache's,
 * with cache_creation split by TTL; OpenAI's prompt_tokens with the cache's,
 * completion_tokens with the reasoning tokens (billed as output).
 */
#include "fr_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...) do { \
        if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__); printf("\n"); } \
    } while (0)

static bool near(double a, double b) { return fabs(a - b) <= 1e-12 + 1e-9 * fabs(b); }

/* Claude Sonnet 5.5's prices (stdlib/models.flow). */
static const fr_model sonnet = {
    .name = "sonnet", .provider = "anthropic", .api_name = "claude-sonnet-5-5",
    .usd_per_mtok_in = 2, .usd_per_mtok_out = 10, .usd_per_mtok_cache_write = 2.5,
    .usd_per_mtok_cache_write_1h = 4, .usd_per_mtok_cache_read = 0.1,
};
/* A model that declares no cache prices (generated code writes -1). */
static const fr_model plain = {
    .name = "plain", .provider = "openai", .api_name = "x",
    .usd_per_mtok_in = 3, .usd_per_mtok_out = 15, .usd_per_mtok_cache_write = -1,
    .usd_per_mtok_cache_write_1h = -1, .usd_per_mtok_cache_read = -1,
};
/* A 5-minute write price but no 1-hour one. */
static const fr_model five = {
    .name = "five", .provider = "anthropic", .api_name = "y",
    .usd_per_mtok_in = 1, .usd_per_mtok_out = 5, .usd_per_mtok_cache_write = 1.25,
    .usd_per_mtok_cache_write_1h = -1, .usd_per_mtok_cache_read = 0.1,
};

static void t_price(void)
{
    const int64_t M = 1000000;
    CHECK(near(fr_price(&sonnet, M, 0, 0, 0, 0), 2), "input");
    CHECK(near(fr_price(&sonnet, 0, M, 0, 0, 0), 10), "output");
    CHECK(near(fr_price(&sonnet, 0, 0, M, 0, 0), 0.1), "cache read");
    CHECK(near(fr_price(&sonnet, 0, 0, 0, M, 0), 2.5), "5-minute cache write");
    CHECK(near(fr_price(&sonnet, 0, 0, 0, 0, M), 4), "1-hour cache write");
    /* all together: 1,000 of each */
    CHECK(near(fr_price(&sonnet, 1000, 1000, 1000, 1000, 1000), (2 + 10 + 0.1 + 2.5 + 4) / 1000),
          "mixed: %.9f", fr_price(&sonnet, 1000, 1000, 1000, 1000, 1000));
    /* undeclared cache prices: as input; an undeclared 1-hour write: as the 5-minute */
    CHECK(near(fr_price(&plain, 0, 0, M, M, M), 9), "undeclared: %g", fr_price(&plain, 0, 0, M, M, M));
    CHECK(near(fr_price(&five, 0, 0, 0, 0, M), 1.25), "1h as 5m: %g", fr_price(&five, 0, 0, 0, 0, M));
}

static void t_charge(void)
{
    fr_resv hold = { -1, 0.05, 9000 };
    fr_response r = { .outcome = FR_ANSWER, .http_status = 200, .usage = true,
                      .input_tokens = 100, .output_tokens = 500, .cache_read_tokens = 4000,
                      .cache_write_tokens = 0, .cache_write_1h_tokens = 0 };
    fr_charge c;
    fr_charge_of(&sonnet, &hold, &r, &c);
    CHECK(c.in == 4100 && c.out == 500 && c.cache_read == 4000 && c.cache_write == 0,
          "tokens: in %lld out %lld read %lld", (long long)c.in, (long long)c.out,
          (long long)c.cache_read);
    double usd = (100 * 2 + 500 * 10 + 4000 * 0.1) / 1e6;
    CHECK(near(c.usd, usd), "usd %.9f, want %.9f", c.usd, usd);
    CHECK(near(c.saved, 4000 * (2 - 0.1) / 1e6), "saved %.9f", c.saved);
    CHECK(!c.held, "charged the hold with usage");

    /* a write costs more than input: the saving is negative */
    r.cache_read_tokens = 0, r.cache_write_tokens = 4000;
    fr_charge_of(&sonnet, &hold, &r, &c);
    CHECK(near(c.saved, -4000 * 0.5 / 1e6), "a write's premium: saved %.9f", c.saved);
    r.cache_write_tokens = 0, r.cache_write_1h_tokens = 4000;
    fr_charge_of(&sonnet, &hold, &r, &c);
    CHECK(near(c.usd, (100 * 2 + 500 * 10 + 4000 * 4.0) / 1e6) && c.cache_write == 4000,
          "1-hour write: %.9f", c.usd);

    /* no usage on an answer: the hold, never $0 */
    fr_response nu = { .outcome = FR_ANSWER, .http_status = 200 };
    fr_charge_of(&sonnet, &hold, &nu, &c);
    CHECK(c.held && near(c.usd, 0.05) && c.in == 9000, "no usage: held %d usd %g", c.held, c.usd);
    nu.outcome = FR_BAD_ANSWER;        /* a refusal or a cut-off answer is billed too */
    fr_charge_of(&sonnet, &hold, &nu, &c);
    CHECK(c.held && near(c.usd, 0.05), "no usage on a bad answer: %g", c.usd);
    /* no answer at all (a connection refused, a 429): nothing */
    fr_response none = { .outcome = FR_TRANSIENT, .http_status = 0 };
    fr_charge_of(&sonnet, &hold, &none, &c);
    CHECK(!c.held && c.usd == 0, "no answer charged %g", c.usd);
    none.http_status = 429;
    fr_charge_of(&sonnet, &hold, &none, &c);
    CHECK(!c.held && c.usd == 0, "a 429 charged %g", c.usd);
}

static json_t *parse(const char *s)
{
    return json_loads(s, 0, NULL);
}

static void t_anthropic(void)
{
    json_t *b = parse("{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":1}\"}],"
                      "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":50,"
                      "\"output_tokens\":70,\"cache_read_input_tokens\":3000,"
                      "\"cache_creation_input_tokens\":1200,\"cache_creation\":{"
                      "\"ephemeral_5m_input_tokens\":200,\"ephemeral_1h_input_tokens\":1000}}}");
    fr_response r = { 0 };
    fr_anthropic_parse(b, false, &r);
    CHECK(r.outcome == FR_ANSWER && r.usage, "outcome %d", r.outcome);
    CHECK(r.input_tokens == 50 && r.output_tokens == 70 && r.cache_read_tokens == 3000 &&
          r.cache_write_tokens == 200 && r.cache_write_1h_tokens == 1000,
          "anthropic usage: %lld %lld %lld %lld %lld", (long long)r.input_tokens,
          (long long)r.output_tokens, (long long)r.cache_read_tokens,
          (long long)r.cache_write_tokens, (long long)r.cache_write_1h_tokens);
    fr_charge c;
    fr_resv hold = { -1, 1, 1 };
    fr_charge_of(&sonnet, &hold, &r, &c);
    CHECK(c.in == 4250, "gen_ai input tokens count the cache's: %lld", (long long)c.in);
    CHECK(near(c.usd, (50 * 2 + 70 * 10 + 3000 * 0.1 + 200 * 2.5 + 1000 * 4.0) / 1e6),
          "anthropic usd %.9f", c.usd);
    fr_response_free(&r);
    json_decref(b);

    /* no TTL split: all 5-minute */
    b = parse("{\"content\":[{\"type\":\"text\",\"text\":\"{}\"}],\"stop_reason\":\"end_turn\","
              "\"usage\":{\"input_tokens\":1,\"output_tokens\":1,"
              "\"cache_creation_input_tokens\":900}}");
    fr_anthropic_parse(b, false, &r);
    CHECK(r.cache_write_tokens == 900 && r.cache_write_1h_tokens == 0, "no split: %lld",
          (long long)r.cache_write_tokens);
    fr_response_free(&r);
    json_decref(b);

    /* no usage at all */
    b = parse("{\"content\":[{\"type\":\"text\",\"text\":\"{}\"}],\"stop_reason\":\"end_turn\"}");
    fr_anthropic_parse(b, false, &r);
    CHECK(!r.usage, "usage seen where there is none");
    fr_response_free(&r);
    json_decref(b);
}

static void t_openai(void)
{
    /* prompt_tokens holds the cache's; completion_tokens the reasoning's */
    json_t *b = parse("{\"choices\":[{\"message\":{\"content\":\"{\\\"a\\\":1}\"},"
                      "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1000,"
                      "\"completion_tokens\":500,\"prompt_tokens_details\":{\"cached_tokens\":600,"
                      "\"cache_write_tokens\":300},\"completion_tokens_details\":"
                      "{\"reasoning_tokens\":400}}}");
    fr_response r = { 0 };
    fr_openai_parse(b, false, &r);
    CHECK(r.outcome == FR_ANSWER && r.usage, "outcome %d", r.outcome);
    CHECK(r.input_tokens == 100 && r.cache_read_tokens == 600 && r.cache_write_tokens == 300 &&
          r.output_tokens == 500, "openai usage: %lld %lld %lld %lld",
          (long long)r.input_tokens, (long long)r.cache_read_tokens,
          (long long)r.cache_write_tokens, (long long)r.output_tokens);
    fr_charge c;
    fr_resv hold = { -1, 1, 1 };
    fr_charge_of(&plain, &hold, &r, &c);
    /* reasoning is output: 500 at $15; undeclared cache prices: as input */
    CHECK(near(c.usd, (1000 * 3 + 500 * 15) / 1e6), "openai usd %.9f", c.usd);
    fr_response_free(&r);
    json_decref(b);

    /* more cached than prompt (a broken server): clamped, never negative */
    b = parse("{\"choices\":[{\"message\":{\"content\":\"{}\"},\"finish_reason\":\"stop\"}],"
              "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1,"
              "\"prompt_tokens_details\":{\"cached_tokens\":50}}}");
    fr_openai_parse(b, false, &r);
    CHECK(r.input_tokens == 0 && r.cache_read_tokens == 10, "clamp: %lld %lld",
          (long long)r.input_tokens, (long long)r.cache_read_tokens);
    fr_response_free(&r);
    json_decref(b);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "selftest") != 0) {
        fprintf(stderr, "usage: rt_cost selftest\n");
        return 2;
    }
    t_price();
    t_charge();
    t_anthropic();
    t_openai();
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
