// A convolution's geometry as the convolution tests list them, each case with a name.
export interface ConvGeometry {
  name: string;
  batch: number;
  cin: number;
  cout: number;
  hw: [number, number];
  k: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
}
