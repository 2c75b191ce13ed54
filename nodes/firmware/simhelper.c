/*
 * simhelper.c: a thin, flat C API over libsimavr for mcu.py (loaded with ctypes).
 *
 * Why a helper rather than ctypes straight onto libsimavr: the simulator is driven through
 * fields of `avr_t` (cycle, state, the `run` and `sleep` function pointers, the data and flash
 * arrays) whose offsets depend on simavr's build-time layout (an io[280] array of structs, an
 * IRQ pool, a cycle-timer pool...), IRQ callbacks fire once per pin edge or UART byte, and the
 * core must be stepped one instruction at a time. Here all of that is plain C compiled against
 * the installed headers: the hot loop never leaves C, events are buffered in C and handed to
 * Python in bulk, and no Python callback ever runs on simavr's stack.
 *
 * Nothing in here keeps global state per MCU: several sims can live in one process and run in
 * different threads (one thread per sim at a time). The only process-wide state is simavr's
 * logger hook, installed once, routing messages to the sim being driven by the calling thread.
 *
 * Hardening for untrusted firmware (simavr 1.6 trusts it):
 *  - simavr writes/reads data[addr] for any 16-bit addr even after flagging a crash, and reads
 *    flash[Z | r0 << 16] for ELPM on cores without RAMPZ: the data and flash arrays are swapped
 *    for buffers covering every reachable address (64 KiB of data, 16 MiB + 64 KiB of flash,
 *    mapped lazily so untouched pages cost nothing).
 *  - the ELF's .mmcu section could ask simavr to write a VCD file anywhere: ignored.
 *  - code larger than flash would make avr_loadcode() abort() the process: refused first.
 *  - simavr's default sleep callback usleep()s to pace the MCU: replaced by our own run
 *    function, so the host alone decides how many cycles run and when.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <pthread.h>

#include <sim_avr.h>
#include <sim_elf.h>
#include <sim_irq.h>
#include <sim_io.h>
#include <sim_cycle_timers.h>
#include <sim_core.h>         /* avr_run_one() */
#include <avr_ioport.h>
#include <avr_uart.h>

#define SIM_API __attribute__((visibility("default")))
#define SIM_ABI_VERSION 1

/* Event kinds, as seen by Python. */
enum { EV_UART_TX = 1, EV_PIN = 2, EV_REG = 3, EV_RESET = 4 };

/* One event, 16 bytes, little-endian: struct.unpack("<QIBBxx"). */
typedef struct __attribute__((packed)) sim_event_t {
	uint64_t cycle;
	uint32_t value;   /* EV_UART_TX: the byte; EV_PIN: the level 0/1; EV_REG: addr << 8 | byte */
	uint8_t kind;
	uint8_t pin;      /* EV_PIN: port index * 8 + bit (port index 0 = 'B', 1 = 'C', 2 = 'D') */
	uint8_t pad[2];
} sim_event_t;

#define NPORTS 3
static const char port_names[NPORTS] = { 'B', 'C', 'D' };

struct sim_t;
typedef struct port_ctx_t {
	struct sim_t *sim;
	avr_ioport_t *io;
	int index;
	avr_irq_t *pins;    /* the port's 8 pin IRQs (then PIN_ALL, DIRECTION_ALL, REG_PORT...) */
	uint8_t known;      /* output bits whose level was reported at least once */
	uint8_t level;      /* last reported output levels */
	uint8_t ext_mask;   /* input bits driven from outside (sim_set_pin) */
	uint8_t ext_value;
} port_ctx_t;

#define MAX_WATCHES 32
typedef struct reg_watch_t {
	struct sim_t *sim;
	uint16_t addr;
} reg_watch_t;

typedef struct sim_t {
	avr_t *avr;
	uint8_t *orig_flash, *orig_data;   /* simavr's own buffers, given back before avr_terminate */
	uint8_t *big_flash, *big_data;
	size_t big_flash_len;
	avr_cycle_count_t limit;           /* run_until's target, for clipping sleeps */
	avr_run_t raw_run;                 /* simavr's run function, as avr_init() set it */
	void (*core_reset)(struct avr_t *avr); /* the core's reset hook, which ours wraps */

	sim_event_t *ev;
	size_t ev_len, ev_cap;
	size_t ev_soft;                    /* run returns early once this many events wait */

	/* UART0 input: bytes waiting for room in simavr's 64-byte RX fifo (XON/XOFF flow control) */
	uint8_t *rxq;
	size_t rxq_head, rxq_len, rxq_cap;
	int xon;
	avr_irq_t *uart_irqs;

	port_ctx_t ports[NPORTS];
	reg_watch_t watches[MAX_WATCHES];  /* I/O registers whose writes become EV_REG events */
	int nwatches;
	char log[8192];                    /* last simavr messages (warnings, errors) */
	size_t log_len;
} sim_t;

/* ------------------------------------------------------------------------------------------ */
/* Logging: simavr's logger is process-wide; route to the sim the calling thread drives.       */

static __thread sim_t *current_sim;

static void sim_logger(avr_t *avr, const int level, const char *fmt, va_list ap)
{
	(void)avr;
	sim_t *s = current_sim;
	if (!s || level > LOG_WARNING)
		return;
	char line[512];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* keep the newest text: drop the oldest half when full */
	if (s->log_len + (size_t)n + 1 > sizeof(s->log)) {
		size_t keep = sizeof(s->log) / 2;
		if (s->log_len > keep) {
			memmove(s->log, s->log + s->log_len - keep, keep);
			s->log_len = keep;
		}
	}
	memcpy(s->log + s->log_len, line, (size_t)n);
	s->log_len += (size_t)n;
	s->log[s->log_len] = 0;
}

static pthread_once_t logger_once = PTHREAD_ONCE_INIT;
static void install_logger(void) { avr_global_logger_set(sim_logger); }

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                      */

static void push_event(sim_t *s, uint8_t kind, uint8_t pin, uint32_t value)
{
	if (s->ev_len == s->ev_cap) {
		size_t cap = s->ev_cap ? s->ev_cap * 2 : 4096;
		sim_event_t *ev = realloc(s->ev, cap * sizeof(*ev));
		if (!ev)
			return; /* out of memory: the event is lost, nothing else */
		s->ev = ev;
		s->ev_cap = cap;
	}
	sim_event_t *e = &s->ev[s->ev_len++];
	e->cycle = s->avr->cycle;
	e->value = value;
	e->kind = kind;
	e->pin = pin;
	e->pad[0] = e->pad[1] = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Digital pins                                                                                */

static void report_output(port_ctx_t *p, int bit, int level)
{
	uint8_t mask = 1u << bit;
	if ((p->known & mask) && (((p->level >> bit) & 1) == level))
		return;
	p->known |= mask;
	p->level = (p->level & ~mask) | (level ? mask : 0);
	push_event(p->sim, EV_PIN, (uint8_t)(p->index * 8 + bit), (uint32_t)level);
}

/* Any pin IRQ: from a PORT/DDR write, from a timer's output compare (PWM), or from us. Only
 * pins configured as outputs are reported. */
static void pin_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	port_ctx_t *p = param;
	int bit = (int)irq->irq;
	if (bit < 0 || bit > 7)
		return;
	uint8_t ddr = p->sim->avr->data[p->io->r_ddr];
	if (ddr & (1u << bit))
		report_output(p, bit, (value & 0xff) ? 1 : 0);
}

/* DDR about to be written (value = new DDR): pins becoming outputs start at their PORT level.
 * Needed because pin IRQs are filtered (no notification when the level did not change). */
static void ddr_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	port_ctx_t *p = param;
	avr_t *avr = p->sim->avr;
	uint8_t port = avr->data[p->io->r_port];
	uint8_t now_out = (uint8_t)value & ~avr->data[p->io->r_ddr];
	for (int bit = 0; bit < 8; bit++)
		if (now_out & (1u << bit))
			report_output(p, bit, (port >> bit) & 1);
}

/* PORT written (value = new PORT). simavr 1.6 raises the pull-up level for inputs with PORT=1
 * but never lowers it again: an input with neither pull-up nor outside driver reads 0 here. */
static void port_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	port_ctx_t *p = param;
	avr_t *avr = p->sim->avr;
	uint8_t floating = ~avr->data[p->io->r_ddr] & ~p->ext_mask & ~(uint8_t)value;
	for (int bit = 0; bit < 8; bit++)
		if ((floating & (1u << bit)) && (avr->data[p->io->r_pin] & (1u << bit)))
			avr_raise_irq(p->pins + bit, 0);
}

/* A watched I/O register was written (timer registers: PWM settings). */
static void reg_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	reg_watch_t *w = param;
	push_event(w->sim, EV_REG, 0, ((uint32_t)w->addr << 8) | (value & 0xff));
}

/* ------------------------------------------------------------------------------------------ */
/* UART0 input with flow control: feed simavr's fifo while it says XON, stop at XOFF.          */

static void uart_feed(sim_t *s)
{
	while (s->xon && s->rxq_len) {
		uint8_t b = s->rxq[s->rxq_head];
		s->rxq_head = (s->rxq_head + 1) % s->rxq_cap;
		s->rxq_len--;
		avr_raise_irq(s->uart_irqs + UART_IRQ_INPUT, b); /* may raise XOFF: s->xon = 0 */
	}
}

static void uart_out_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	push_event((sim_t *)param, EV_UART_TX, 0, value & 0xff);
}

static void uart_xon_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq; (void)value;
	sim_t *s = param;
	s->xon = 1;
	uart_feed(s);
}

static void uart_xoff_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	sim_t *s = param;
	if (value)
		s->xon = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Running                                                                                     */

/* avr_callback_run_raw() of simavr 1.6, less its usleep(), with sleeps clipped at s->limit so
 * that run_until() never runs far past its target. Clipping never lands on the cycle a timer is
 * due, so results do not depend on how a run is cut into calls (determinism). */
static void run_one(avr_t *avr, sim_t *s)
{
	avr_flashaddr_t new_pc = avr->pc;
	if (avr->state == cpu_Running)
		new_pc = avr_run_one(avr);
	avr_cycle_count_t sleep = avr_cycle_timer_process(avr);
	avr->pc = new_pc;
	if (avr->state == cpu_Sleeping) {
		if (!avr->sreg[S_I]) {           /* sleeping with interrupts off: never wakes */
			avr->state = cpu_Done;
			return;
		}
		avr_cycle_count_t land = avr->cycle + 1 + sleep;   /* where simavr would land */
		if (land > s->limit) {
			avr_cycle_count_t clipped = s->limit;
			if (clipped == avr->cycle + sleep)            /* the timer's own cycle: avoid */
				clipped--;
			if (clipped > avr->cycle)
				land = clipped;
		}
		avr->cycle = land;
	}
	if ((avr->state == cpu_Running || avr->state == cpu_Sleeping) && avr->interrupt_state)
		avr_service_interrupts(avr);
}

/* Run until avr->cycle >= target, the MCU stops (done, crashed), or ev_soft events wait.
 * Returns the state. */
SIM_API int sim_run_until(sim_t *s, uint64_t target)
{
	avr_t *avr = s->avr;
	current_sim = s;
	s->limit = target;
	while (avr->cycle < target &&
	       (avr->state == cpu_Running || avr->state == cpu_Sleeping) &&
	       s->ev_len < s->ev_soft) {
		if (avr->run != s->raw_run)  /* the watchdog swapped in its reset: let it run */
			avr->run(avr);
		else
			run_one(avr, s);
	}
	current_sim = NULL;
	return avr->state;
}

/* Every reset (watchdog, sim_reset): tell the host, forget reported levels (all pins are inputs
 * again), hold UART input until the firmware enables its receiver again, and put the outside
 * levels back into PINx (avr_reset() zeroed the I/O registers behind the pins' backs). */
static void reset_hook(avr_t *avr)
{
	sim_t *s = current_sim;
	if (!s || s->avr != avr)
		return;
	if (s->core_reset)
		s->core_reset(avr);
	s->xon = 0;
	s->uart_irqs[UART_IRQ_OUT_XOFF].value = 0;
	for (int i = 0; i < NPORTS; i++) {
		port_ctx_t *p = &s->ports[i];
		p->known = 0;
		/* PORTx, DDRx, PINx are 0 now, but the port's IRQs (filtered: raised only on change)
		 * still hold the old values: a pull-up or a pinMode() after the reset would go unseen */
		for (int irq = 0; irq < IOPORT_IRQ_COUNT; irq++)
			p->pins[irq].value = 0;
		for (int bit = 0; bit < 8; bit++)
			if (p->ext_mask & p->ext_value & (1u << bit))
				avr_raise_irq(p->pins + bit, 1);
	}
	push_event(s, EV_RESET, 0, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Life cycle                                                                                  */

static int guard_memory(sim_t *s)
{
	avr_t *avr = s->avr;
	/* data: every 16-bit address, and a little more */
	size_t data_len = 0x10000 + 64;
	uint8_t *data = calloc(1, data_len);
	/* flash: ELPM without RAMPZ can reach Z | r0 << 16 (24 bits); mapped lazily */
	size_t flash_len = (1u << 24) + 0x10000;
	uint8_t *flash = mmap(NULL, flash_len, PROT_READ | PROT_WRITE,
	                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!data || flash == MAP_FAILED) {
		free(data);
		if (flash != MAP_FAILED)
			munmap(flash, flash_len);
		return -1;
	}
	memcpy(data, avr->data, avr->ramend + 1);
	memcpy(flash, avr->flash, avr->flashend + 4);
	s->orig_data = avr->data;
	s->orig_flash = avr->flash;
	s->big_data = data;
	s->big_flash = flash;
	s->big_flash_len = flash_len;
	avr->data = data;
	avr->flash = flash;
	return 0;
}

static void set_err(char *err, size_t errlen, const char *msg, const sim_t *s)
{
	if (!err || !errlen)
		return;
	if (s && s->log_len)
		snprintf(err, errlen, "%s (simavr: %s)", msg, s->log);
	else
		snprintf(err, errlen, "%s", msg);
	for (char *c = err; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
}

SIM_API void sim_free(sim_t *s);

static int hook_ports(sim_t *s)
{
	avr_t *avr = s->avr;
	for (int i = 0; i < NPORTS; i++) {
		port_ctx_t *p = &s->ports[i];
		p->sim = s;
		p->index = i;
		for (avr_io_t *io = avr->io_port; io; io = io->next)
			if (!strcmp(io->kind, "port") && ((avr_ioport_t *)io)->name == port_names[i])
				p->io = (avr_ioport_t *)io;
		p->pins = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(port_names[i]), 0);
		if (!p->io || !p->pins)
			return -1;
		for (int bit = 0; bit < 8; bit++)
			avr_irq_register_notify(p->pins + bit, pin_hook, p);
		avr_irq_register_notify(p->pins + IOPORT_IRQ_DIRECTION_ALL, ddr_hook, p);
		avr_irq_register_notify(p->pins + IOPORT_IRQ_REG_PORT, port_hook, p);
	}
	return 0;
}

/* A new simulated MCU running the ELF at `elf_path`; NULL and a message in `err` on failure. */
SIM_API sim_t *sim_new(const char *mcu, uint32_t frequency, const char *elf_path, char *err, size_t errlen)
{
	pthread_once(&logger_once, install_logger);
	sim_t *s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, errlen, "out of memory", NULL);
		return NULL;
	}
	current_sim = s;
	s->ev_soft = 1u << 16;

	/* elf_firmware_t's size depends on simavr's ELF_SYMBOLS: leave room for any layout */
	union { elf_firmware_t fw; uint8_t room[16384]; } *box = calloc(1, sizeof(*box));
	if (!box)
		goto fail_oom;
	if (elf_read_firmware(elf_path, &box->fw) != 0) {
		set_err(err, errlen, "cannot read the ELF file", s);
		free(box);
		goto fail;
	}
	elf_firmware_t *fw = &box->fw;
	if (!fw->flash || !fw->flashsize) {
		set_err(err, errlen, "no code in the ELF file", s);
		goto fail_fw;
	}
	s->avr = avr_make_mcu_by_name(mcu);
	if (!s->avr) {
		set_err(err, errlen, "unknown MCU", s);
		goto fail_fw;
	}
	avr_init(s->avr);
	s->avr->log = LOG_WARNING;
	if (fw->flashbase + fw->flashsize > s->avr->flashend + 1) {
		set_err(err, errlen, "firmware larger than the MCU's flash", s);
		goto fail_fw;
	}
	/* the ELF's .mmcu section is untrusted: no VCD file, no command or console register */
	fw->tracecount = 0;
	fw->tracename[0] = 0;
	fw->command_register_addr = 0;
	fw->console_register_addr = 0;
	fw->frequency = frequency;
	if (guard_memory(s) != 0)
		goto fail_fw_oom;
	avr_load_firmware(s->avr, fw);
	s->avr->frequency = frequency;
	free(fw->flash);
	free(fw->eeprom);
	free(fw->fuse);
	free(fw->lockbits);
#if ELF_SYMBOLS
	for (uint32_t i = 0; i < fw->symbolcount; i++)
		free(fw->symbol[i]);
	free(fw->symbol);
#endif
	free(box);
	box = NULL;

	/* UART0: no polling usleep(), no echo of its output on stdout */
	uint32_t flags = 0;
	avr_ioctl(s->avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
	s->uart_irqs = avr_io_getirq(s->avr, AVR_IOCTL_UART_GETIRQ('0'), 0);
	s->rxq_cap = 4096;
	s->rxq = malloc(s->rxq_cap);
	if (!s->uart_irqs || !s->rxq) {
		set_err(err, errlen, "no UART0 on this MCU", s);
		goto fail;
	}
	avr_irq_register_notify(s->uart_irqs + UART_IRQ_OUTPUT, uart_out_hook, s);
	avr_irq_register_notify(s->uart_irqs + UART_IRQ_OUT_XON, uart_xon_hook, s);
	avr_irq_register_notify(s->uart_irqs + UART_IRQ_OUT_XOFF, uart_xoff_hook, s);
	if (hook_ports(s) != 0) {
		set_err(err, errlen, "no PORTB/C/D on this MCU", s);
		goto fail;
	}
	s->raw_run = s->avr->run;
	s->core_reset = s->avr->reset;
	s->avr->reset = reset_hook;
	current_sim = NULL;
	return s;

fail_fw_oom:
	set_err(err, errlen, "out of memory", NULL);
fail_fw:
	if (box) {
		free(box->fw.flash);
		free(box->fw.eeprom);
		free(box);
	}
	goto fail;
fail_oom:
	set_err(err, errlen, "out of memory", NULL);
fail:
	current_sim = NULL;
	sim_free(s);
	return NULL;
}

SIM_API void sim_free(sim_t *s)
{
	if (!s)
		return;
	current_sim = s;
	if (s->avr) {
		if (s->big_data) {
			s->avr->data = s->orig_data;
			s->avr->flash = s->orig_flash;
		}
		if (s->avr->flash)
			avr_terminate(s->avr);
		free(s->avr);
	}
	free(s->big_data);
	if (s->big_flash)
		munmap(s->big_flash, s->big_flash_len);
	free(s->ev);
	free(s->rxq);
	current_sim = NULL;
	free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Accessors and inputs                                                                        */

SIM_API int sim_abi_version(void) { return SIM_ABI_VERSION; }
SIM_API uint64_t sim_cycle(const sim_t *s) { return s->avr->cycle; }
SIM_API int sim_state(const sim_t *s) { return s->avr->state; }
SIM_API uint32_t sim_pc(const sim_t *s) { return s->avr->pc; }
SIM_API uint32_t sim_frequency(const sim_t *s) { return s->avr->frequency; }
SIM_API uint16_t sim_sp(const sim_t *s) { return (uint16_t)(s->avr->data[R_SPL] | (s->avr->data[R_SPH] << 8)); }
SIM_API int sim_interrupts_enabled(const sim_t *s) { return s->avr->sreg[S_I]; }
SIM_API const char *sim_log(const sim_t *s) { return s->log; }
SIM_API void sim_clear_log(sim_t *s) { s->log_len = 0; s->log[0] = 0; }
SIM_API void sim_set_event_soft_limit(sim_t *s, size_t n) { s->ev_soft = n ? n : 1; }

/* Press the reset button: the firmware starts over (RAM kept, I/O registers cleared). */
SIM_API void sim_reset(sim_t *s)
{
	current_sim = s;
	avr_reset(s->avr);
	current_sim = NULL;
}

/* Copy up to `max` waiting events into `out` (in order) and forget them; returns how many. */
SIM_API size_t sim_drain(sim_t *s, sim_event_t *out, size_t max)
{
	size_t n = s->ev_len < max ? s->ev_len : max;
	memcpy(out, s->ev, n * sizeof(*out));
	memmove(s->ev, s->ev + n, (s->ev_len - n) * sizeof(*out));
	s->ev_len -= n;
	return n;
}

SIM_API size_t sim_pending_events(const sim_t *s) { return s->ev_len; }

/* Queue bytes for UART0's receiver: they enter simavr's fifo as it has room and reach the
 * firmware one per byte time. Returns the number queued (all, unless out of memory). */
SIM_API size_t sim_uart_write(sim_t *s, const uint8_t *data, size_t len)
{
	if (s->rxq_len + len > s->rxq_cap) {
		size_t cap = s->rxq_cap;
		while (s->rxq_len + len > cap)
			cap *= 2;
		uint8_t *q = malloc(cap);
		if (!q)
			return 0;
		for (size_t i = 0; i < s->rxq_len; i++)
			q[i] = s->rxq[(s->rxq_head + i) % s->rxq_cap];
		free(s->rxq);
		s->rxq = q;
		s->rxq_cap = cap;
		s->rxq_head = 0;
	}
	for (size_t i = 0; i < len; i++)
		s->rxq[(s->rxq_head + s->rxq_len + i) % s->rxq_cap] = data[i];
	s->rxq_len += len;
	current_sim = s;
	uart_feed(s);
	current_sim = NULL;
	return len;
}

SIM_API size_t sim_uart_pending(const sim_t *s) { return s->rxq_len; }

/* Drive an input pin from outside: level 0 or 1, or -1 to let go (the pin then reads its
 * pull-up: 1 if the firmware enabled it, else 0). port_index: 0 = B, 1 = C, 2 = D. */
SIM_API int sim_set_pin(sim_t *s, int port_index, int bit, int level)
{
	if (port_index < 0 || port_index >= NPORTS || bit < 0 || bit > 7)
		return -1;
	port_ctx_t *p = &s->ports[port_index];
	avr_t *avr = s->avr;
	uint8_t mask = 1u << bit;
	if (level < 0) {
		p->ext_mask &= ~mask;
		p->ext_value &= ~mask;
	} else {
		p->ext_mask |= mask;
		p->ext_value = (p->ext_value & ~mask) | (level ? mask : 0);
	}
	/* simavr applies the outside level whenever it re-evaluates the port (DDR/PORT writes) */
	avr_ioport_external_t e = { .name = port_names[port_index], .mask = p->ext_mask, .value = p->ext_value };
	current_sim = s;
	avr_ioctl(avr, AVR_IOCTL_IOPORT_SET_EXTERNAL(port_names[port_index]), &e);
	if (!(avr->data[p->io->r_ddr] & mask)) {
		int v = level >= 0 ? level : ((avr->data[p->io->r_port] & mask) ? 1 : 0);
		avr_raise_irq(p->pins + bit, (uint32_t)v);  /* sets PINx, raises PCINT if enabled */
	}
	current_sim = NULL;
	return 0;
}

/* Report every write to the I/O register at data address `addr` (0x20..0x136) as EV_REG. */
SIM_API int sim_watch_register(sim_t *s, uint16_t addr)
{
	if (s->nwatches >= MAX_WATCHES || addr < 0x20 || addr >= 0x20 + MAX_IOs)
		return -1;
	for (int i = 0; i < s->nwatches; i++)
		if (s->watches[i].addr == addr)
			return 0;
	avr_irq_t *irq = avr_iomem_getirq(s->avr, addr, NULL, AVR_IOMEM_IRQ_ALL);
	if (!irq)
		return -1;
	reg_watch_t *w = &s->watches[s->nwatches++];
	w->sim = s;
	w->addr = addr;
	avr_irq_register_notify(irq, reg_hook, w);
	return 0;
}

/* PORTx, DDRx and PINx of a port, packed as port | ddr << 8 | pin << 16. */
SIM_API uint32_t sim_port_state(const sim_t *s, int port_index)
{
	if (port_index < 0 || port_index >= NPORTS)
		return 0;
	const avr_ioport_t *io = s->ports[port_index].io;
	const uint8_t *d = s->avr->data;
	return (uint32_t)d[io->r_port] | ((uint32_t)d[io->r_ddr] << 8) | ((uint32_t)d[io->r_pin] << 16);
}

/* Read data memory (registers, I/O, SRAM) for inspection: PWM timer registers and the like. */
SIM_API uint8_t sim_peek(const sim_t *s, uint16_t addr) { return s->avr->data[addr]; }
