// Simulation-only DRAM: an AXI4 slave memory for long runs without Python on each cycle.
//
// * INCR bursts of full-width beats (AxSIZE = log2(DATA_BITS / 8), as the accelerator issues; other
//   bursts and sizes answer SLVERR), any ID, up to READ_QUEUE read and WRITE_QUEUE write bursts accepted ahead of their data.
// * One R beat and one W beat per cycle, back to back across bursts: it never throttles the design.
// * Reads: the first beat of a burst comes read_latency cycles after its AR handshake (at least 2).
// * Beats at or beyond +dram_bytes answer SLVERR (reads return 0, writes are dropped; a write
//   burst with any such beat, or whose WLAST disagrees with AWLEN, gets SLVERR on B).
// * Plusargs: +dram_image=FILE  $readmemh image, one DATA_BITS-bit word per line (word 0 first);
//             +dram_bytes=N     decoded size (default: the capacity, WORDS words);
//             +dram_read_latency=N;
//             +dram_dump=FILE   $writememh of the first +dram_bytes when `dump` is high on a clock edge.
module axi_dram #(
    parameter int DATA_BITS = 128,
    parameter int ID_BITS = 2,
    parameter int ADDR_BITS = 32,
    parameter int WORDS = 1 << 20,
    parameter int READ_QUEUE = 8,
    parameter int WRITE_QUEUE = 4
) (
    input  logic                   clk,
    input  logic                   rst,
    input  logic                   dump,
    input  logic [ID_BITS-1:0]     awid,
    input  logic [ADDR_BITS-1:0]   awaddr,
    input  logic [7:0]             awlen,
    input  logic [2:0]             awsize,
    input  logic [1:0]             awburst,
    input  logic                   awvalid,
    output logic                   awready,
    input  logic [DATA_BITS-1:0]   wdata,
    input  logic [DATA_BITS/8-1:0] wstrb,
    input  logic                   wlast,
    input  logic                   wvalid,
    output logic                   wready,
    output logic [ID_BITS-1:0]     bid,
    output logic [1:0]             bresp,
    output logic                   bvalid,
    input  logic                   bready,
    input  logic [ID_BITS-1:0]     arid,
    input  logic [ADDR_BITS-1:0]   araddr,
    input  logic [7:0]             arlen,
    input  logic [2:0]             arsize,
    input  logic [1:0]             arburst,
    input  logic                   arvalid,
    output logic                   arready,
    output logic [ID_BITS-1:0]     rid,
    output logic [DATA_BITS-1:0]   rdata,
    output logic [1:0]             rresp,
    output logic                   rlast,
    output logic                   rvalid,
    input  logic                   rready
);
    localparam int BYTES = DATA_BITS / 8;
    localparam int SHIFT = $clog2(BYTES);
    localparam int RQ_BITS = $clog2(READ_QUEUE);
    localparam int WQ_BITS = $clog2(WRITE_QUEUE);
    localparam logic [1:0] OKAY = 2'd0, SLVERR = 2'd2, INCR = 2'd1;

    logic [DATA_BITS-1:0] mem [WORDS];
    logic [ADDR_BITS:0] size_words;       // words below this decode
    logic [63:0] read_latency;
    string dump_file;

    initial begin
        string image;
        longint unsigned value;
        for (int i = 0; i < WORDS; i++) mem[i] = '0;
        size_words = (ADDR_BITS + 1)'(WORDS);
        if ($value$plusargs("dram_bytes=%d", value)) size_words = (ADDR_BITS + 1)'(value >> SHIFT);
        if (size_words > (ADDR_BITS + 1)'(WORDS)) begin
            $display("axi_dram: +dram_bytes is larger than the %0d-word capacity", WORDS);
            $finish;
        end
        read_latency = 64'd2;
        if ($value$plusargs("dram_read_latency=%d", value)) read_latency = value < 2 ? 64'd2 : 64'(value);
        if ($value$plusargs("dram_image=%s", image)) $readmemh(image, mem);
        if (!$value$plusargs("dram_dump=%s", dump_file)) dump_file = "";
    end

    function automatic logic decodes(logic [ADDR_BITS-1:0] address, logic [7:0] beat, logic supported);
        logic [ADDR_BITS:0] word = (ADDR_BITS + 1)'(address >> SHIFT) + (ADDR_BITS + 1)'(beat);
        return supported && word < size_words;
    endfunction

    function automatic int word_index(logic [ADDR_BITS-1:0] address, logic [7:0] beat);
        return int'((address >> SHIFT) + ADDR_BITS'(beat));
    endfunction

    logic [63:0] now;
    always_ff @(posedge clk) now <= rst ? 64'd0 : now + 64'd1;

    // Reads: a queue of accepted bursts; the head streams one beat per cycle once due.
    logic [ID_BITS-1:0]   rq_id [READ_QUEUE];
    logic [ADDR_BITS-1:0] rq_addr [READ_QUEUE];
    logic [7:0]           rq_len [READ_QUEUE];
    logic [63:0]          rq_due [READ_QUEUE];
    logic                 rq_ok [READ_QUEUE];
    logic [RQ_BITS-1:0]   rq_head, rq_tail;
    logic [RQ_BITS:0]     rq_count;
    logic [7:0]           r_beat;

    logic ar_fire, r_advance, r_issue, r_issue_last;
    assign arready = rq_count != (RQ_BITS + 1)'(READ_QUEUE);
    assign ar_fire = arvalid && arready;
    assign r_advance = !rvalid || rready;
    assign r_issue = r_advance && rq_count != '0 && now + 64'd1 >= rq_due[rq_head];
    assign r_issue_last = r_issue && r_beat == rq_len[rq_head];

    always_ff @(posedge clk) begin
        if (rst) begin
            rq_head <= '0;
            rq_tail <= '0;
            rq_count <= '0;
            r_beat <= '0;
            rvalid <= 1'b0;
        end else begin
            if (ar_fire) begin
                rq_id[rq_tail] <= arid;
                rq_addr[rq_tail] <= araddr;
                rq_len[rq_tail] <= arlen;
                rq_due[rq_tail] <= now + read_latency;
                rq_ok[rq_tail] <= arburst == INCR && arsize == 3'(SHIFT);
                rq_tail <= rq_tail + 1'b1;
            end
            rq_count <= rq_count + (RQ_BITS + 1)'(ar_fire) - (RQ_BITS + 1)'(r_issue_last);
            if (r_advance) rvalid <= r_issue;
            if (r_issue) begin
                rid <= rq_id[rq_head];
                rlast <= r_issue_last;
                if (decodes(rq_addr[rq_head], r_beat, rq_ok[rq_head])) begin
                    rdata <= mem[word_index(rq_addr[rq_head], r_beat)];
                    rresp <= OKAY;
                end else begin
                    rdata <= '0;
                    rresp <= SLVERR;
                end
                r_beat <= r_issue_last ? 8'd0 : r_beat + 8'd1;
                if (r_issue_last) rq_head <= rq_head + 1'b1;
            end
        end
    end

    // Writes: a queue of accepted addresses; W beats go to the head; B responses queue up.
    logic [ID_BITS-1:0]   wq_id [WRITE_QUEUE];
    logic [ADDR_BITS-1:0] wq_addr [WRITE_QUEUE];
    logic                 wq_ok [WRITE_QUEUE];
    logic [7:0]           wq_len [WRITE_QUEUE];
    logic [WQ_BITS-1:0]   wq_head, wq_tail;
    logic [WQ_BITS:0]     wq_count;
    logic [7:0]           w_beat;
    logic                 w_failed;
    logic [ID_BITS-1:0]   bq_id [WRITE_QUEUE];
    logic [1:0]           bq_resp [WRITE_QUEUE];
    logic [WQ_BITS-1:0]   bq_head, bq_tail;
    logic [WQ_BITS:0]     bq_count;

    logic aw_fire, w_fire, w_fire_last, b_fire, w_decodes, w_bad;
    assign awready = wq_count != (WQ_BITS + 1)'(WRITE_QUEUE);
    assign aw_fire = awvalid && awready;
    assign wready = wq_count != '0 && bq_count != (WQ_BITS + 1)'(WRITE_QUEUE);
    assign w_fire = wvalid && wready;
    assign w_fire_last = w_fire && wlast;
    assign w_decodes = decodes(wq_addr[wq_head], w_beat, wq_ok[wq_head]);
    assign w_bad = !w_decodes || (w_beat == wq_len[wq_head]) != wlast;
    assign bvalid = bq_count != '0;
    assign bid = bq_id[bq_head];
    assign bresp = bq_resp[bq_head];
    assign b_fire = bvalid && bready;

    always_ff @(posedge clk) begin
        if (rst) begin
            wq_head <= '0;
            wq_tail <= '0;
            wq_count <= '0;
            w_beat <= '0;
            w_failed <= 1'b0;
            bq_head <= '0;
            bq_tail <= '0;
            bq_count <= '0;
        end else begin
            if (aw_fire) begin
                wq_id[wq_tail] <= awid;
                wq_addr[wq_tail] <= awaddr;
                wq_ok[wq_tail] <= awburst == INCR && awsize == 3'(SHIFT);
                wq_len[wq_tail] <= awlen;
                wq_tail <= wq_tail + 1'b1;
            end
            wq_count <= wq_count + (WQ_BITS + 1)'(aw_fire) - (WQ_BITS + 1)'(w_fire_last);
            if (w_fire) begin
                if (w_decodes) begin
                    for (int i = 0; i < BYTES; i++)
                        if (wstrb[i]) mem[word_index(wq_addr[wq_head], w_beat)][8 * i +: 8] <= wdata[8 * i +: 8];
                end
                w_beat <= wlast ? 8'd0 : w_beat + 8'd1;
                w_failed <= !wlast && (w_failed || w_bad);
                if (wlast) begin
                    bq_id[bq_tail] <= wq_id[wq_head];
                    bq_resp[bq_tail] <= (w_failed || w_bad) ? SLVERR : OKAY;
                    bq_tail <= bq_tail + 1'b1;
                    wq_head <= wq_head + 1'b1;
                end
            end
            if (b_fire) bq_head <= bq_head + 1'b1;
            bq_count <= bq_count + (WQ_BITS + 1)'(w_fire_last) - (WQ_BITS + 1)'(b_fire);
        end
    end

    always @(posedge clk) begin
        if (dump && dump_file != "") $writememh(dump_file, mem, 0, int'(size_words) - 1);
    end
endmodule
