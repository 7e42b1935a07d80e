// Simulation model of the ECP5 MULT18X18D, for the subset hw.systolic.registered_mul
// instantiates (issue #13): P = A * B (36 bits), each operand two's complement when its SIGNED
// input is 1; the A and B input registers and the output register clocked by CLK0 when
// REG_INPUTA_CLK / REG_INPUTB_CLK / REG_OUTPUT_CLK is "CLK0" (combinational when "NONE"), enabled
// by CE0, cleared synchronously by RST0. Anything else (other clocks, the pipeline register,
// the cascade and shift paths) is outside the subset and stops the simulation. Written from the
// port list and parameters of yosys's ECP5 cell library (share/ecp5/cells_bb.v) and Lattice's
// sysDSP usage guide for ECP5 (TN1267): a model of the primitive as we use it, so that the
// wiring around it (operand extension, bit order, latency) is simulated, not the silicon.
module MULT18X18D(A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0, B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0, C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0, P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0, SIGNEDP);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0;
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0;
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0;
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB;
    input CLK3, CLK2, CLK1, CLK0;
    input CE3, CE2, CE1, CE0;
    input RST3, RST2, RST1, RST0;
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0;
    output SIGNEDP;

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0")
            || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
            || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0")
            || REG_PIPELINE_CLK != "NONE" || MULT_BYPASS != "DISABLED")
            $fatal(1, "MULT18X18D model: configuration outside the modelled subset");
    end

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_q, b_q;
    reg sa_q, sb_q;
    always @(posedge CLK0) if (RST0) begin a_q <= 0; b_q <= 0; sa_q <= 0; sb_q <= 0; end
        else if (CE0) begin a_q <= a; b_q <= b; sa_q <= SIGNEDA; sb_q <= SIGNEDB; end
    wire [17:0] a_m = REG_INPUTA_CLK == "CLK0" ? a_q : a;
    wire [17:0] b_m = REG_INPUTB_CLK == "CLK0" ? b_q : b;
    wire sa = REG_INPUTA_CLK == "CLK0" ? sa_q : SIGNEDA;
    wire sb = REG_INPUTB_CLK == "CLK0" ? sb_q : SIGNEDB;
    wire signed [36:0] a_x = {{19{sa & a_m[17]}}, a_m};
    wire signed [36:0] b_x = {{19{sb & b_m[17]}}, b_m};
    wire signed [73:0] prod = a_x * b_x;
    reg [35:0] p_q;
    always @(posedge CLK0) if (RST0) p_q <= 0; else if (CE0) p_q <= prod[35:0];
    wire [35:0] p = REG_OUTPUT_CLK == "CLK0" ? p_q : prod[35:0];
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
    assign SIGNEDP = sa | sb;
endmodule
